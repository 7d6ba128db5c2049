"""Each stage is callable on its own, with JSON-serializable input and output,
so an executor can checkpoint between stages."""

from __future__ import annotations

import asyncio
import functools

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.steps import StepLog
from carrier.testing import FakeModel
from carrier.types import (
    ActionCall,
    ActionResult,
    Content,
    IncomingMessage,
    Memory,
    ModelRequest,
    ModelResponse,
    Reply,
    State,
)


async def test_stages_run_one_by_one_through_json(
    runtime: AgentRuntime, fake_model: FakeModel
) -> None:
    incoming = IncomingMessage(text="hi there", user_id="u1", room_id="r1", message_id="m1")
    incoming = IncomingMessage.model_validate_json(incoming.model_dump_json())

    message = runtime.receive(incoming)
    message = Memory.model_validate_json(message.model_dump_json())
    room = await runtime.connect(message, incoming)
    message, fresh, _ = await runtime.store_message(message)
    assert fresh

    state = await runtime.compose_state(message, room)
    state = State.model_validate_json(state.model_dump_json())
    request = runtime.compose_context(state)
    request = ModelRequest.model_validate_json(request.model_dump_json(by_alias=True))
    assert request.messages[-1].content == "hi there"

    fake_model.queue("hello u1")
    response = await runtime.generate(request, message)
    response = ModelResponse.model_validate_json(response.model_dump_json())
    contents, results = await runtime.act(message, state, response)
    responses = await runtime.remember(message, contents)
    reply = Reply(message=message, responses=responses, action_results=results)
    reply = Reply.model_validate_json(reply.model_dump_json())
    assert reply.texts == ["hello u1"]

    # the same message through the whole loop now is a duplicate, answered from the store
    again = await runtime.handle(incoming)
    assert again.duplicate
    assert again.texts == ["hello u1"]


def test_camel_case_aliases_round_trip() -> None:
    memory = Memory.model_validate(
        {
            "agentId": "a",
            "entityId": "e",
            "roomId": "r",
            "content": {"text": "x", "inReplyTo": "m0"},
        }
    )
    assert memory.content.in_reply_to == "m0"
    dumped = memory.model_dump(by_alias=True)
    assert dumped["roomId"] == "r"
    assert dumped["content"]["inReplyTo"] == "m0"


async def test_stored_reply_reads_the_outcome_of_a_message_from_the_store(
    runtime: AgentRuntime, fake_model: FakeModel
) -> None:
    assert await runtime.stored_reply("never-sent") is None

    incoming = IncomingMessage(text="hi", user_id="u1", room_id="r1", message_id="m7")
    message = runtime.receive(incoming)
    room = await runtime.connect(message, incoming)
    await runtime.store_message(message)
    pending = await runtime.stored_reply("m7")
    assert pending is not None
    assert pending.message.content.text == "hi"
    assert pending.responses == []

    fake_model.queue("hello again")
    state = await runtime.compose_state(message, room)
    response = await runtime.generate(runtime.compose_context(state), message)
    contents, _ = await runtime.act(message, state, response)
    await runtime.remember(message, contents)
    answered = await runtime.stored_reply("m7")
    assert answered is not None
    assert answered.texts == ["hello again"]
    assert not answered.duplicate


class MemoryReads(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    async def get_memory(self, memory_id):  # type: ignore[no-untyped-def]
        self.reads.append([memory_id])
        return await super().get_memory(memory_id)

    async def get_memories_by_id(self, memory_ids):  # type: ignore[no-untyped-def]
        self.reads.append(list(memory_ids))
        return await super().get_memories_by_id(memory_ids)


async def test_a_stored_reply_is_read_in_one_store_call_with_its_first_responses(
    host: PluginHost, character: Character
) -> None:
    store = MemoryReads()
    async with AgentRuntime(character, host=host, store=store, models={}) as runtime:
        answers = {}
        for message_id, user, count in (("short", "ada", 1), ("long", "bob", 6)):
            incoming = IncomingMessage(text="hi", user_id=user, message_id=message_id)
            message = runtime.receive(incoming)
            await runtime.connect(message, incoming)
            await runtime.store_message(message)
            texts = [f"{message_id} part {n}" for n in range(count)]
            await runtime.remember(message, [Content(text=t) for t in texts])
            store.reads.clear()
            answers[user] = (await runtime.stored_reply(message_id), texts)
            assert len(store.reads) == (1 if count < 4 else 2), store.reads
    for user, (reply, texts) in answers.items():
        assert reply is not None
        assert reply.message.entity_id == user
        assert reply.texts == texts  # every response, in order, none of the other user's


async def test_recorded_steps_replay_in_the_form_stored_now_and_in_the_earlier_one(
    runtime: AgentRuntime,
) -> None:
    """A run cut off before an upgrade is finished by the new version: records stored
    as dicts (before records were stored as pydantic's own JSON) still replay."""
    steps = StepLog(runtime.store, "agent", ttl_s=30.0)
    response = ModelResponse(
        text="noting", action_calls=[ActionCall(name="NOTE", arguments={"n": 1})]
    )
    outcome = ActionResult(name="NOTE", text="noted", data={"n": 1})
    await steps.record_response("new", 0, response)
    await steps.record_outcome("new", 0, 0, outcome)
    await runtime.store.set_cache("step:agent:old:0", response.model_dump(mode="json"))
    await runtime.store.set_cache("act:agent:old:0:0", outcome.model_dump(mode="json"))
    for message_id in ("new", "old"):
        assert await steps.response(message_id, 0) == response
        assert await steps.outcome(message_id, 0, 0) == outcome
    assert await steps.response("new", 1) is None
    assert await steps.outcome("new", 0, 1) is None


async def test_a_run_longer_than_its_lease_keeps_it_by_renewing_it(character: Character) -> None:
    """Two runtimes on one store, as two processes would be: while the first answers
    slowly (0.8 s against a 0.3 s lease, renewed every 0.1 s), the second is refused
    the same message rather than answering it again."""
    store = InMemoryStore()
    slow = FakeModel(default_text="done", latency_s=0.8)
    settings = CarrierSettings(lease_ttl_s=0.3, _env_file=None)

    def agent() -> AgentRuntime:
        return AgentRuntime(
            character,
            host=PluginHost(autoload=False, settings=settings),
            store=store,
            models={"large": slow, "small": slow, "embedding": None},
        )

    incoming = IncomingMessage(text="hi", user_id="u", room_id="r", message_id="m1")
    async with agent() as first, agent() as second:
        running = asyncio.create_task(first.handle(incoming))
        await asyncio.sleep(0.6)  # twice the lease's time to live
        assert (await second.handle(incoming)).in_progress
        reply = await running
        assert reply.texts == ["done"]
        await reply.evaluated()
        again = await second.handle(incoming)  # finished: answered from the store
        assert again.duplicate
        assert again.texts == ["done"]


async def test_stored_replies_reads_many_messages_in_one_store_call(
    host: PluginHost, character: Character
) -> None:
    store = MemoryReads()
    async with AgentRuntime(character, host=host, store=store, models={}) as runtime:
        counts = {"ada-1": ("ada", 1), "bob-1": ("bob", 6), "ada-2": ("ada", 0)}
        for message_id, (user, count) in counts.items():
            incoming = IncomingMessage(text="hi", user_id=user, message_id=message_id)
            message = runtime.receive(incoming)
            await runtime.connect(message, incoming)
            await runtime.store_message(message)
            texts = [f"{message_id} part {n}" for n in range(count)]
            if texts:
                await runtime.remember(message, [Content(text=t) for t in texts])
        store.reads.clear()
        replies = await runtime.stored_replies(["bob-1", "ada-1", "never-sent", "ada-2"])
        assert len(store.reads) == 2, store.reads  # all at once, then Bob's later ones
    assert list(replies) == ["bob-1", "ada-1", "never-sent", "ada-2"]
    assert replies["never-sent"] is None
    for message_id, (user, count) in counts.items():
        reply = replies[message_id]
        assert reply is not None
        assert reply.message.entity_id == user
        assert reply.texts == [f"{message_id} part {n}" for n in range(count)]


async def test_a_lease_released_with_a_write_goes_with_it_and_stays_if_it_did_not(
    runtime: AgentRuntime,
) -> None:
    store = runtime.store
    steps = StepLog(store, "agent", ttl_s=30.0)
    ada, bob = steps.lease("ada-1"), steps.lease("bob-1")
    assert await ada.acquire()
    assert await bob.acquire()
    answer = Memory(id="ada-1-agent", agent_id="agent", entity_id="agent", room_id="ada")
    write = functools.partial(store.create_memory_with_cache, answer, {})
    assert await ada.release_with(write)
    assert not await steps.in_progress("ada-1")  # deleted with the answer
    await ada.release()  # released: nothing to do
    assert await bob.release_with(write) is False  # the answer exists: nothing written
    assert await steps.in_progress("bob-1")  # so Bob's lease stays ...
    await bob.release()
    assert not await steps.in_progress("bob-1")  # ... until it is released
