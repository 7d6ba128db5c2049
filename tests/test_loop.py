"""The whole loop with the FakeModel and the in-memory store."""

from __future__ import annotations

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.errors import ModelRejectedError, StoreError, TransientModelError
from carrier.host import PluginHost
from carrier.prompts import TurnCache
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import EventRecorder, FakeModel, prompt_text
from carrier.types import EventType, IncomingMessage, MemoryType, Role, RoomType
from tests.plugins_for_tests import CountingEvaluator, TestPlugin


@pytest.fixture
def carrier_settings() -> CarrierSettings:
    """Fast retries for this module (overrides carrier.testing's fixture)."""
    return CarrierSettings(model_retry_initial_s=0.01, _env_file=None)


@pytest.fixture
async def agent(host: PluginHost, character: Character, fake_model: FakeModel):
    host.register(TestPlugin(slow=True), name="test-plugin")
    async with runtime_on(host, character, fake_model) as runtime:
        yield runtime


def runtime_on(host: PluginHost, character: Character, model: FakeModel) -> AgentRuntime:
    """A runtime with ``model`` as its large and small model, on the in-memory store."""
    return AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": model, "small": model, "embedding": None},
    )


def msg(text: str, **fields: object) -> IncomingMessage:
    values: dict[str, object] = {"user_id": "alice", "user_name": "Alice", "room_id": "r1"}
    values.update(fields)
    return IncomingMessage(text=text, **values)  # type: ignore[arg-type]


async def test_every_stage_runs_and_events_arrive_in_order(
    agent: AgentRuntime, fake_model: FakeModel, events: EventRecorder
) -> None:
    fake_model.queue("It is sunny.", actions=[("GET_WEATHER", {"city": "Oslo"})])
    reply = await agent.handle(msg("weather in Oslo?"))
    await reply.evaluated()
    assert reply.texts == ["It is sunny."]
    assert reply.action_results[0].data == {"city": "Oslo", "days": 1}
    types = events.types(reply.message.id)
    expected = [
        EventType.RUN_STARTED,
        EventType.CONNECTED,
        EventType.MESSAGE_RECEIVED,
        EventType.MESSAGE_STORED,
        EventType.SHOULD_RESPOND,
        EventType.STATE_COMPOSED,
        EventType.CONTEXT_COMPOSED,
        EventType.MODEL_USED,
        EventType.ACTION_STARTED,
        EventType.ACTION_COMPLETED,
        EventType.MESSAGE_SENT,
        EventType.RUN_ENDED,  # the reply is stored: the client has its answer
        EventType.EVALUATOR_COMPLETED,
    ]
    assert [t for t in types if t in expected] == expected
    assert all(e.duration_ms >= 0 for e in events.events)
    assert events.of(EventType.RUN_ENDED)[0].duration_ms > 0
    # the response is stored under the idempotent id
    stored = await agent.store.get_memory(f"{reply.message.id}-{agent.agent_id}")
    assert stored is not None
    assert stored.content.text == "It is sunny."
    assert stored.content.in_reply_to == reply.message.id


async def test_prompt_has_persona_history_provider_and_offered_actions(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    await agent.handle(msg("first message"))
    await agent.handle(msg("second message"))
    request = fake_model.requests[-1]
    assert request.system is not None
    assert "You are Testy." in request.system
    assert "The time is noon." in request.messages[-1].content  # after the history
    assert [m.content for m in request.messages[:2]] == ["first message", "ok"]
    assert request.messages[-1].content.endswith("\n\nsecond message")
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    offered = {a.name for a in request.actions}
    assert {"GET_WEATHER", "SHOUT", "CONTINUE"} <= offered
    assert "SHUTDOWN" not in offered  # needs admin; alice is a member
    weather = next(a for a in request.actions if a.name == "GET_WEATHER")
    assert weather.parameters["required"] == ["city"]


async def test_slow_provider_times_out_without_stalling(
    agent: AgentRuntime, events: EventRecorder
) -> None:
    reply = await agent.handle(msg("hello"))
    assert reply.texts == ["ok"]
    failed = events.of(EventType.PROVIDER_FAILED)
    assert failed[0].data["provider"] == "slow"
    assert "timed out" in failed[0].data["error"]
    assert events.of(EventType.RUN_ENDED)[0].duration_ms < 2000


async def test_action_found_by_simile_and_extra_messages_sent(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("Here you go.", actions=[("forecast", {"city": "Rome", "days": 3}), "SHOUT"])
    reply = await agent.handle(msg("quiet please"))
    assert reply.texts == ["Here you go.", "QUIET PLEASE"]
    assert [r.success for r in reply.action_results] == [True, True]
    ids = [m.id for m in reply.responses]
    assert ids == [f"{reply.message.id}-{agent.agent_id}", f"{reply.message.id}-{agent.agent_id}-1"]


async def test_unknown_action_is_reported_not_raised(
    agent: AgentRuntime, fake_model: FakeModel, events: EventRecorder
) -> None:
    fake_model.queue("Sure.", actions=["LAUNCH_ROCKET"])
    reply = await agent.handle(msg("launch"))
    assert reply.texts == ["Sure."]
    result = reply.action_results[0]
    assert not result.success
    assert "'LAUNCH_ROCKET', which is not offered" in (result.error or "")
    assert events.of(EventType.ACTION_FAILED)[0].data["action"] == "LAUNCH_ROCKET"
    logs = await agent.store.get_logs(agent_id=agent.agent_id)
    assert logs[-1]["type"] == "action_failed"


async def test_invalid_arguments_give_the_model_another_step(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("Checking.", actions=[("GET_WEATHER", {"days": "many"})])
    fake_model.queue("Oslo is sunny.", actions=[("GET_WEATHER", {"city": "Oslo"})])
    reply = await agent.handle(msg("weather?"))
    first, second = reply.action_results
    assert not first.success
    assert "Invalid arguments for action 'GET_WEATHER'" in (first.error or "")
    assert "city: Field required" in (first.error or "")
    assert second.success
    # the second request told the model what went wrong
    assert "Field required" in prompt_text(fake_model.requests[-1])


async def test_handler_exception_becomes_a_failed_result(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("Trying.", actions=["BROKEN"])
    reply = await agent.handle(msg("break it"))
    assert reply.error is None
    assert reply.action_results[0].error == "Action 'BROKEN' failed: RuntimeError: disk on fire"


async def test_role_refusal_whatever_the_model_answers(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("Shutting down.", actions=["SHUTDOWN"])
    reply = await agent.handle(msg("shut down"))
    assert not reply.action_results[0].success
    assert "not offered" in (reply.action_results[0].error or "")
    fake_model.queue("Shutting down.", actions=["SHUTDOWN"])
    reply = await agent.handle(msg("shut down", role=Role.OWNER, room_id="r2"))
    assert reply.action_results[0].text == "shutting down"


async def test_multi_step_is_bounded(agent: AgentRuntime, fake_model: FakeModel) -> None:
    fake_model.queue("thinking", actions=["CONTINUE"], times=10)
    reply = await agent.handle(msg("think hard"))
    assert len(reply.action_results) == agent.settings.max_action_steps
    assert fake_model.pending == 10 - agent.settings.max_action_steps


async def test_ignore_action_suppresses_the_reply(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("I would say something", actions=["IGNORE"])
    reply = await agent.handle(msg("blah"))
    assert reply.ignored
    assert reply.responses == []
    marker = await agent.store.get_memory(f"{reply.message.id}-{agent.agent_id}")
    assert marker is not None
    assert marker.metadata == {"ignored": True}
    assert await agent.store.unanswered_messages(agent_id=agent.agent_id) == []


async def test_evaluators_run_and_a_failing_one_is_contained(
    agent: AgentRuntime, events: EventRecorder
) -> None:
    CountingEvaluator.seen.clear()
    reply = await agent.handle(msg("evaluate me"))
    names = {r.name: r for r in await reply.evaluated()}
    assert names["counter"].data == {"responses": 1}
    assert names["failing"].error == "ValueError: evaluator bug"
    assert CountingEvaluator.seen == ["evaluate me"]
    assert events.of(EventType.EVALUATOR_FAILED)[0].data["evaluator"] == "failing"


async def test_group_room_ignores_chatter_and_answers_a_mention(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    chatter = await agent.handle(msg("lunch anyone?", room_id="g", room_type=RoomType.GROUP))
    assert chatter.ignored
    assert fake_model.requests == []
    mention = await agent.handle(
        msg("testy, what time is it?", room_id="g", room_type=RoomType.GROUP)
    )
    assert mention.texts == ["ok"]
    # in a group the history names the speakers
    assert fake_model.requests[-1].messages[-2].content == "Alice: lunch anyone?"


async def test_streaming_passes_text_deltas(agent: AgentRuntime, fake_model: FakeModel) -> None:
    fake_model.queue("one two three")
    deltas: list[str] = []

    async def on_text(delta: str) -> None:
        deltas.append(delta)

    reply = await agent.handle(msg("count"), on_text=on_text)
    assert deltas == ["one", " two", " three"]
    assert reply.texts == ["one two three"]


async def test_transient_errors_are_retried_with_events(
    agent: AgentRuntime, fake_model: FakeModel, events: EventRecorder
) -> None:
    fake_model.queue(error=TransientModelError("429 slow down", retry_after=0.01), times=2)
    fake_model.queue("finally")
    reply = await agent.handle(msg("hello"))
    assert reply.texts == ["finally"]
    retries = events.of(EventType.MODEL_RETRY)
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert retries[0].data["wait_s"] >= 0.01


async def test_rejection_fails_fast_and_the_message_is_kept_for_recovery(
    agent: AgentRuntime, fake_model: FakeModel, events: EventRecorder
) -> None:
    fake_model.queue(error=ModelRejectedError("401 invalid key"))
    reply = await agent.handle(msg("hello", message_id="m-1"))
    assert reply.error is not None
    assert "401 invalid key" in reply.error
    assert events.of(EventType.MODEL_RETRY) == []
    assert await agent.store.get_memory("m-1") is not None
    unanswered = await agent.store.unanswered_messages(agent_id=agent.agent_id)
    assert [m.id for m in unanswered] == ["m-1"]
    recovered = await agent.recover()
    assert [r.texts for r in recovered] == [["ok"]]
    assert await agent.recover() == []  # answered once


async def test_fallback_chain_answers_when_the_primary_is_dead(
    host: PluginHost, character: Character, events: EventRecorder
) -> None:
    dead = FakeModel(name="dead")
    dead.queue(error=ModelRejectedError("primary is down"))
    backup = FakeModel(name="backup", default_text="from backup")
    host.register(_TwoModels(dead, backup), name="two-models")
    runtime = AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": "dead -> backup", "embedding": None},
    )
    async with runtime:
        reply = await runtime.handle(msg("hi"))
    assert reply.texts == ["from backup"]
    fallback = events.of(EventType.MODEL_FALLBACK)[0]
    assert (fallback.data["from"], fallback.data["to"]) == ("dead", "backup")


async def test_incoming_message_is_stored_with_an_embedding(
    host: PluginHost, character: Character
) -> None:
    model = FakeModel(embedding_dimension=32)
    runtime = AgentRuntime(
        character, host=host, store=InMemoryStore(), models={"large": model, "embedding": model}
    )
    async with runtime:
        await runtime.store.create_memory(_fact(runtime, "Alice owns a red bicycle", model))
        await runtime.store.create_memory(_fact(runtime, "The sky is blue today", model))
        reply = await runtime.handle(msg("what colour is the bicycle Alice owns?"))
    assert reply.message.embedding is not None
    assert len(reply.message.embedding) == 32
    assert "Alice owns a red bicycle" in prompt_text(model.requests[-1])
    assert "The sky is blue" not in prompt_text(model.requests[-1])


def _fact(runtime: AgentRuntime, text: str, model: FakeModel):
    from carrier.builtin.echo_model import hashed_embedding
    from carrier.types import Content, Memory

    return Memory(
        agent_id=runtime.agent_id,
        entity_id="alice",
        room_id="r1",
        type=MemoryType.FACT,
        content=Content(text=text),
        embedding=hashed_embedding(text, 32),
    )


class _TwoModels:
    def __init__(self, *models: FakeModel) -> None:
        self.models = models

    from carrier import hookimpl

    @hookimpl
    def carrier_register_models(self, models):  # type: ignore[no-untyped-def]
        for model in self.models:
            models.add(model.name, lambda model=model, **_: model)


async def test_a_leading_speaker_label_is_stripped(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("Testy: Hello, I am Testy.")
    reply = await agent.handle(msg("who are you?"))
    assert reply.texts == ["Hello, I am Testy."]


async def test_retry_waits_follow_the_initial_wait_setting(
    host: PluginHost, character: Character, events: EventRecorder
) -> None:
    model = FakeModel()
    model.queue(error=TransientModelError("503"), times=3)
    runtime = AgentRuntime(
        character, host=host, store=InMemoryStore(), models={"large": model, "embedding": None}
    )
    async with runtime:
        reply = await runtime.handle(msg("hello"))
    assert reply.texts == ["ok"]
    waits = [e.data["wait_s"] for e in events.of(EventType.MODEL_RETRY)]
    assert len(waits) == 3
    assert all(w < 0.2 for w in waits)


async def test_oversized_message_is_refused_before_storing(agent: AgentRuntime) -> None:
    from carrier.errors import InputError

    agent.settings.max_message_chars = 1000
    with pytest.raises(InputError, match="1,001 characters; this agent accepts at most 1,000"):
        await agent.handle(msg("x" * 1001, message_id="big"))
    assert await agent.store.get_memory("big") is None


async def test_oversized_model_answer_is_cut(agent: AgentRuntime, fake_model: FakeModel) -> None:
    agent.settings.max_response_chars = 50
    fake_model.queue("word " * 1000)
    reply = await agent.handle(msg("talk a lot"))
    assert len(reply.texts[0]) <= 52
    assert reply.texts[0].endswith(" …")


async def test_continue_is_re_offered_each_step(agent: AgentRuntime, fake_model: FakeModel) -> None:
    from carrier.protocols import Action

    seen_steps: list[int] = []
    original = Action.validate

    async def validate(self, runtime, message, state):  # type: ignore[no-untyped-def]
        if self.name == "CONTINUE":
            seen_steps.append(state.step)
            return state.step + 1 < runtime.settings.max_action_steps
        return await original(self, runtime, message, state)

    continue_action = agent.actions.find("CONTINUE")
    assert continue_action is not None
    continue_action.validate = validate.__get__(continue_action)  # type: ignore[method-assign]
    fake_model.queue("thinking", actions=["CONTINUE"], times=10)
    await agent.handle(msg("think"))
    offered_last = {a.name for a in fake_model.requests[-1].actions}
    assert "CONTINUE" not in offered_last
    assert set(seen_steps) == set(range(agent.settings.max_action_steps))


async def test_incoming_reply_marker_is_kept(agent: AgentRuntime) -> None:
    reply = await agent.handle(msg("answering you", in_reply_to="m-earlier"))
    assert reply.message.content.in_reply_to == "m-earlier"


async def test_no_action_is_offered_to_a_model_that_cannot_choose_one(
    host: PluginHost, character: Character
) -> None:
    host.register(TestPlugin(), name="test-plugin")
    model = FakeModel()
    model.calls_actions = False
    runtime = AgentRuntime(
        character, host=host, store=InMemoryStore(), models={"large": model, "embedding": None}
    )
    async with runtime:
        await runtime.handle(msg("hello"))
    assert model.requests[0].actions == []


class TokenCountingModel(FakeModel):
    """Counts which texts the loop asks it to count, as a local model's tokenizer runs."""

    def __init__(self) -> None:
        super().__init__(default_text="noted")
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return len(text) // 4 + 1


async def test_history_turns_are_counted_once_not_for_every_prompt(
    host: PluginHost, character: Character
) -> None:
    model = TokenCountingModel()
    async with runtime_on(host, character, model) as runtime:
        for index in range(12):
            await runtime.handle(msg(f"message number {index}"))
    # the first message is counted as the current message, then once as history
    assert model.counted.count("message number 0") == 2
    assert model.counted.count("noted") == 1  # the agent's answer, as history
    history = model.requests[-1].messages
    assert [m.content for m in history[:3]] == ["message number 0", "noted", "message number 1"]
    assert history[-1].content == "message number 11"


async def test_a_group_room_labels_each_turn_with_its_speaker(
    runtime: AgentRuntime, fake_model: FakeModel
) -> None:
    bob = {"user_id": "bob", "user_name": "Bob"}
    turns = [("Testy, hi", {}), ("Testy, hi", bob), ("Testy?", {}), ("Testy?", bob)]
    for text, sender in turns:
        await runtime.handle(msg(text, room_type=RoomType.GROUP, room_id="g", **sender))
    contents = [m.content for m in fake_model.requests[-1].messages]
    assert contents == [
        *("Alice: Testy, hi", "ok", "Bob: Testy, hi", "ok", "Alice: Testy?", "ok"),
        "Testy?",
    ]


def test_turn_cache_keeps_what_its_byte_budget_holds_and_counts_each_once() -> None:
    from carrier.prompts import TURN_OVERHEAD

    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text)

    cache = TurnCache(count, max_bytes=2 * (TURN_OVERHEAD + 5))  # two 5-character turns
    first, cost = cache.turn("user", "hello")
    assert (first.role, first.content, cost) == ("user", "hello", 9)
    assert cache.turn("user", "hello")[0] is first
    assert cache.turn("assistant", "hello")[0].role == "assistant"
    assert (len(cache), cache.bytes) == (2, 2 * (TURN_OVERHEAD + 5))
    cache.turn("user", "third")  # the oldest entry goes
    assert cache.turn("user", "hello")[0] is not first
    assert counted == ["hello", "hello", "third", "hello"]
    # a long text costs what it holds: it alone pushes out everything older
    cache.turn("user", "x" * 2 * TURN_OVERHEAD)
    assert len(cache) == 1


class FlakyReleaseStore(InMemoryStore):
    """A store whose deletes of a lease fail ``failures`` times (a database that blinks)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def compare_and_set_cache(self, key, expected, value, *, ttl_s=None):  # type: ignore[no-untyped-def]
        if key.startswith("run:") and value is None and self.failures:
            self.failures -= 1
            raise StoreError("the database went away")
        return await super().compare_and_set_cache(key, expected, value, ttl_s=ttl_s)


async def test_a_lease_release_that_fails_is_retried(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    store = FlakyReleaseStore(failures=2)
    host.register(TestPlugin(), name="test")
    async with AgentRuntime(
        character, host=host, store=store, models={"large": fake_model, "embedding": None}
    ) as runtime:
        reply = await runtime.handle(msg("hello"))
    # stopping waits for the run's end: evaluators, then the release
    assert reply.texts
    assert store.failures == 0
    assert await store.list_cache("run:") == []  # released on the third try


async def test_a_lease_release_that_keeps_failing_is_finished_by_recovery_without_a_new_answer(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    store = FlakyReleaseStore(failures=100)
    host.register(TestPlugin(), name="test")
    async with AgentRuntime(
        character, host=host, store=store, models={"large": fake_model, "embedding": None}
    ) as runtime:
        reply = await runtime.handle(msg("hello"))
    assert reply.texts
    assert store.failures == 95  # five tries, then given up
    assert len(await store.list_cache("run:")) == 1
    store.failures = 0
    async with AgentRuntime(
        character, host=host, store=store, models={"large": fake_model, "embedding": None}
    ) as runtime:
        recovered = await runtime.recover(in_process=True)
        # the stored answer is reused (its evaluators run again: the lease said unfinished)
        assert [r.duplicate for r in recovered] == [True]
        assert recovered[0].texts == reply.texts
        assert await store.list_cache("run:") == []
        answers = await store.get_memories(agent_id=runtime.agent_id, room_id="r1")
        assert [m.content.text for m in answers if m.entity_id == runtime.agent_id] == reply.texts


class WriteLog(InMemoryStore):
    """Records the writes of memories and cache entries, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, ...]] = []
        self._with_cache = False

    async def create_memory(self, memory):  # type: ignore[no-untyped-def]
        if not self._with_cache:
            self.writes.append(("memory", memory.id))
        return await super().create_memory(memory)

    async def create_memory_with_cache(self, memory, entries, *, ttl_s=None):  # type: ignore[no-untyped-def]
        self.writes.append(("memory", memory.id, *sorted(entries)))
        self._with_cache = True
        try:
            return await super().create_memory_with_cache(memory, entries, ttl_s=ttl_s)
        finally:
            self._with_cache = False

    async def set_cache(self, key, value, *, ttl_s=None):  # type: ignore[no-untyped-def]
        if not self._with_cache:
            self.writes.append(("cache", key))
        await super().set_cache(key, value, ttl_s=ttl_s)

    async def add_cache(self, key, value, *, ttl_s=None):  # type: ignore[no-untyped-def]
        if not self._with_cache:
            self.writes.append(("cache", key))
        return await super().add_cache(key, value, ttl_s=ttl_s)

    async def compare_and_set_cache(self, key, expected, value, *, ttl_s=None):  # type: ignore[no-untyped-def]
        self.writes.append(("cache", key))
        return await super().compare_and_set_cache(key, expected, value, ttl_s=ttl_s)

    def of(self, message_id: str) -> list[tuple[str, ...]]:
        return [w for w in self.writes if any(message_id in part for part in w[1:])]


async def test_recording_adds_one_write_per_message_and_one_per_action_step(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    store = WriteLog()
    host.register(TestPlugin(), name="test")
    async with AgentRuntime(
        character, host=host, store=store, models={"large": fake_model, "embedding": None}
    ) as runtime:
        agent = runtime.agent_id
        fake_model.queue("Sure.")
        plain = await runtime.handle(msg("hello", user_id="ada", room_id="dm-ada"))
        fake_model.queue("Here you go.", actions=[("forecast", {"city": "Rome", "days": 3})])
        acted = await runtime.handle(msg("weather?", user_id="bob", room_id="dm-bob"))
        await plain.evaluated()
        await acted.evaluated()
    m = plain.message.id
    # the lease is written with the message, released after the evaluators
    assert store.of(m) == [
        ("memory", m, f"run:{agent}:{m}"),
        ("memory", f"{m}-{agent}"),
        ("cache", f"run:{agent}:{m}"),
    ]
    a = acted.message.id
    # the step's response before its action; the action's outcome with the reply
    assert store.of(a) == [
        ("memory", a, f"run:{agent}:{a}"),
        ("cache", f"step:{agent}:{a}:0"),
        ("memory", f"{a}-{agent}", f"act:{agent}:{a}:0:0"),
        ("cache", f"run:{agent}:{a}"),
    ]
    assert acted.texts == ["Here you go."]
    assert [r.success for r in acted.action_results] == [True]
    assert plain.texts == ["Sure."]


class RoomReads(InMemoryStore):
    """Records the room records each message reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, ...]] = []

    async def get_room_with_actors(self, room_id):  # type: ignore[no-untyped-def]
        """One read, as the SQL stores make it."""
        self.reads.append(("room with actors", room_id))
        room = await self.get_room(room_id)
        if room is None:
            return None, [], []
        participants = await InMemoryStore.get_participants(self, room_id)
        ids = [p.entity_id for p in participants]
        found = {e.id: e for e in await InMemoryStore.get_entities(self, ids)}
        return room, participants, [found[i] for i in ids if i in found]

    async def get_participant(self, room_id, entity_id):  # type: ignore[no-untyped-def]
        self.reads.append(("participant", room_id, entity_id))
        return await super().get_participant(room_id, entity_id)

    async def get_participants(self, room_id):  # type: ignore[no-untyped-def]
        self.reads.append(("participants", room_id))
        return await super().get_participants(room_id)

    async def get_entities(self, entity_ids):  # type: ignore[no-untyped-def]
        self.reads.append(("entities", *entity_ids))
        return await super().get_entities(entity_ids)

    async def upsert_entity(self, entity):  # type: ignore[no-untyped-def]
        self.reads.append(("write entity", entity.id))
        await super().upsert_entity(entity)

    async def upsert_participant(self, participant):  # type: ignore[no-untyped-def]
        self.reads.append(("write participant", participant.entity_id))
        await super().upsert_participant(participant)


async def test_a_room_is_connected_with_the_fewest_reads_and_writes(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    store = RoomReads()
    host.register(TestPlugin(), name="test")
    group = {"room_id": "team", "room_type": RoomType.GROUP}
    models = {"large": fake_model, "embedding": None}
    name = character.name  # named, so that the agent answers in a group room
    async with AgentRuntime(character, host=host, store=store, models=models) as runtime:
        agent = runtime.agent_id
        store.reads.clear()
        await runtime.handle(msg(f"hello {name}", user_id="ada", user_name="Ada", **group))
        # connecting Ada created the room with her and the agent in it (one call:
        # create_room_with); no participant is looked up, their entities are (the
        # actors, not read again in composing; the turn's read has the agent's
        # participation, for every message)
        assert store.reads == [
            ("room with actors", "team"),  # none yet
            ("write participant", "ada"),
            ("write participant", agent),
            ("entities", "ada", agent),
            ("write entity", "ada"),
            ("participant", "team", agent),
        ]
        store.reads.clear()
        await runtime.handle(msg(f"hi {name}", user_id="bob", user_name="Bob", **group))
        # Bob joins a room that exists: one read of it with its participants and their
        # entities (the actors, not read again), one of his entity, then his records
        assert store.reads == [
            ("room with actors", "team"),
            ("entities", "bob"),
            ("write entity", "bob"),
            ("write participant", "bob"),
            ("participant", "team", agent),
        ]
        ada = (await store.get_entities(["ada"]))[0]
        await store.upsert_entity(ada.model_copy(update={"metadata": {"tz": "UTC"}}))
    # another process (a worker) meets the room: one read, nothing written for Ada
    async with AgentRuntime(character, host=host, store=store, models=models) as other:
        store.reads.clear()
        reply = await other.handle(msg(f"again, {name}", user_id="ada", user_name="Ada", **group))
        assert store.reads == [
            ("room with actors", "team"),
            ("participant", "team", agent),
        ]
        assert reply.texts  # answered, with the actors read in connecting
        # Bob, renamed, met by this process: his names change, his other data stays
        store.reads.clear()
        await other.handle(msg(f"hey {name}", user_id="bob", user_name="Robert", **group))
        assert ("write entity", "bob") in store.reads
        assert ("write participant", "bob") not in store.reads
        # Ada, known, opens a room of her own: her entity and the agent's, read with
        # the team's room, are neither read nor written again
        store.reads.clear()
        await other.handle(msg("hi", user_id="ada", user_name="Ada", room_id="dm-ada"))
        assert store.reads == [
            ("room with actors", "dm-ada"),  # none yet
            ("write participant", "ada"),
            ("write participant", agent),
            ("participant", "dm-ada", agent),
        ]
        # ... and renamed in another room of hers, the write starts from her entity as
        # stored (what another process wrote since kept), not from this process's copy
        ada = (await store.get_entities(["ada"]))[0]
        await store.upsert_entity(ada.model_copy(update={"metadata": {"tz": "UTC", "lang": "fr"}}))
        store.reads.clear()
        await other.handle(msg("hello", user_id="ada", user_name="Ada L.", room_id="dm-ada-2"))
        assert ("entities", "ada") in store.reads
        assert ("write entity", "ada") in store.reads
        renamed = {e.id: e for e in await store.get_entities(["ada", "bob"])}
    assert renamed["bob"].names == ["Robert"]
    assert renamed["ada"].names == ["Ada L."]
    assert renamed["ada"].metadata == {"tz": "UTC", "lang": "fr"}
    participants = await store.get_participants("team")
    assert sorted(p.entity_id for p in participants) == sorted(["ada", "bob", agent])


class LeasedInBetween(InMemoryStore):
    """Another process leases each new message between its write and its lease's."""

    async def create_memory_with_cache(self, memory, entries, **options):  # type: ignore[no-untyped-def]
        for key in entries:
            if key.startswith("run:"):
                other = {"owner": "other", "host": "elsewhere", "pid": 1, "until": 4e9}
                await self.set_cache(key, other)
        return await super().create_memory_with_cache(memory, entries, **options)


async def test_a_message_leased_by_another_process_as_it_is_stored_is_left_to_it(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    store = LeasedInBetween()
    host.register(TestPlugin(), name="test")
    async with AgentRuntime(
        character, host=host, store=store, models={"large": fake_model, "embedding": None}
    ) as runtime:
        replies = [
            await runtime.handle(msg("hello", user_id=user, room_id=f"dm-{user}"))
            for user in ("ada", "bob")
        ]
        for reply in replies:
            assert reply.in_progress
            assert reply.responses == []
            lease = await store.get_cache(f"run:{runtime.agent_id}:{reply.message.id}")
            assert lease["owner"] == "other"  # kept, not overwritten
        assert fake_model.requests == []  # never answered here
