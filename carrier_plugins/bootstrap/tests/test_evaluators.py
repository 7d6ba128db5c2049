"""Evaluators in the loop: facts (stored with embeddings, deduplicated by meaning,
retrieved later), goal progress, reflection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.testing.fakes import EventRecorder
from carrier.types import EventType, Goal, GoalStatus, IncomingMessage, MemoryType, Objective

Say = Callable[..., IncomingMessage]


@pytest.fixture
async def remembering(
    bootstrap_host: PluginHost,
    character: Character,
    fake_model: FakeModel,
    small_model: FakeModel,
    sql_store: Any,
    minilm: Any,
) -> AsyncIterator[AgentRuntime]:
    """The agent with real MiniLM embeddings."""
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": fake_model, "small": small_model, "embedding": minilm},
    ) as runtime:
        yield runtime


def _facts(*facts: str) -> str:
    return json.dumps({"facts": list(facts)})


async def test_a_fact_stated_once_is_retrieved_in_a_later_message(
    remembering: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    small_model.queue(
        _facts("Ada bakes bread for a living.", "Ada's sister Maria lives in Lisbon.")
    )
    reply = await remembering.handle(
        say("I bake bread for a living, and my sister Maria is in Lisbon")
    )
    (facts,) = [r for r in await reply.evaluated() if r.name == "facts"]
    assert len(facts.data["added"]) == 2
    stored = await remembering.store.get_memories(
        agent_id=remembering.agent_id, type=MemoryType.FACT
    )
    assert all(m.embedding is not None and m.entity_id == "ada" for m in stored)

    await remembering.handle(say("What do you know about my sister Maria?", room="elsewhere"))
    system = prompt_text(fake_model.requests[-1])
    assert "Things you know:\n- Ada's sister Maria lives in Lisbon." in system
    assert "Things you know:\n- Ada bakes bread for a living." not in system


async def test_facts_are_deduplicated_by_meaning(
    remembering: AgentRuntime, small_model: FakeModel, say: Say
) -> None:
    small_model.queue(_facts("Ada lives in Oslo."))
    await remembering.handle(say("I live in Oslo"))
    small_model.queue(
        _facts("Ada lives in Oslo now.", "Ada works as a baker.", "Ada lives in Oslo")
    )
    reply = await remembering.handle(say("I still live in Oslo and I work as a baker"))
    (facts,) = [r for r in await reply.evaluated() if r.name == "facts"]
    assert facts.data == {
        "added": ["Ada works as a baker."],
        "duplicates": ["Ada lives in Oslo now.", "Ada lives in Oslo"],
        "rejected": [],
    }
    count = await remembering.store.count_memories(
        agent_id=remembering.agent_id, type=MemoryType.FACT
    )
    assert count == 2


async def test_questions_and_unusable_answers_store_nothing(
    agent: AgentRuntime, small_model: FakeModel, say: Say
) -> None:
    await agent.handle(say("What time is it?"))
    assert small_model.requests == []  # nothing about the user: no model call
    small_model.queue("Sure! Ada likes {broken json")
    reply = await agent.handle(say("I like cats a lot"))
    (facts,) = [r for r in await reply.evaluated() if r.name == "facts"]
    assert not facts.success
    assert "no JSON object" in (facts.error or "")
    assert reply.texts == ["ok"]
    assert await agent.store.count_memories(agent_id=agent.agent_id, type=MemoryType.FACT) == 0


async def test_goal_progress_is_marked_and_the_goal_closed(
    agent: AgentRuntime, small_model: FakeModel, say: Say
) -> None:
    goal = Goal(
        agent_id=agent.agent_id,
        room_id="dm-ada",
        name="move house",
        objectives=[Objective(description="pack boxes"), Objective(description="hire a van")],
    )
    await agent.store.upsert_goal(goal)
    small_model.queue(json.dumps({"completed": [{"goal": goal.id, "objective": 1}]}))
    reply = await agent.handle(say("The boxes are all packed."))
    (result,) = [r for r in await reply.evaluated() if r.name == "goals"]
    assert result.data["marked"] == [{"goal": goal.id, "objective": 1}]
    assert "1. [ ] pack boxes" in (small_model.requests[0].system or "")
    small_model.queue(json.dumps({"completed": [{"goal": "move house", "objective": 2}]}))
    reply = await agent.handle(say("The van is booked for Friday."))
    (result,) = [r for r in await reply.evaluated() if r.name == "goals"]
    assert result.data["closed"] == [goal.id]
    stored = await agent.store.get_goal(goal.id)
    assert stored is not None
    assert stored.status is GoalStatus.DONE


async def test_a_reflection_is_written_every_n_messages_and_shown(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: Any,
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_REFLECTION_INTERVAL", "4")
    large, small = FakeModel(), FakeModel(default_text="{}")
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        await (await agent.handle(say("hello"))).evaluated()
        assert small.requests == []
        small.queue(json.dumps({"summary": "Ada greeted Testy twice."}))
        # the evaluators run once the reply is stored: 4 messages, answers included
        reply = await agent.handle(say("how are things"))
        (result,) = [r for r in await reply.evaluated() if r.name == "reflection"]
        assert result.data == {"summary": "Ada greeted Testy twice.", "messages": 4}
        assert "Ada: hello" in small.requests[0].messages[0].content
        await agent.handle(say("anything new?"))
        assert "Summary of the conversation so far: Ada greeted Testy twice." in prompt_text(
            large.requests[-1]
        )
        assert len(small.requests) == 1  # not again before 4 more messages


async def test_invented_facts_are_dropped_and_reported(
    bootstrap_host: PluginHost,
    agent: AgentRuntime,
    small_model: FakeModel,
    say: Say,
) -> None:
    events = EventRecorder()
    bootstrap_host.register(events, name="events")
    invented = [
        "My name is Elena, I'm a creative writing student.",
        "Ada was born in Barcelona.",
        "Ada works at TechCorp.",
    ]
    small_model.queue(_facts(*invented, "Ada's name is Ada."))
    reply = await agent.handle(say("Hello! My name is Ada"))
    (facts,) = [r for r in await reply.evaluated() if r.name == "facts"]
    assert facts.data == {"added": ["Ada's name is Ada."], "duplicates": [], "rejected": invented}
    stored = await agent.store.get_memories(agent_id=agent.agent_id, type=MemoryType.FACT)
    assert [m.content.text for m in stored] == ["Ada's name is Ada."]
    (event,) = events.of(EventType.MEMORY_REJECTED)
    assert event.data["count"] == 3
    assert event.message_id == reply.message.id


async def test_verbatim_mode_keeps_the_senders_own_words_without_a_model_call(
    bootstrap_host: PluginHost,
    fake_model: FakeModel,
    small_model: FakeModel,
    sql_store: Any,
    say: Say,
) -> None:
    character = Character(name="Testy", settings={"BOOTSTRAP_FACTS_MODE": "verbatim"})
    models = {"large": fake_model, "small": small_model, "embedding": None}
    async with AgentRuntime(
        character, host=bootstrap_host, store=sql_store, models=models
    ) as agent:
        reply = await agent.handle(say("Hi! My name is Ada. I live in Oslo. What about you?"))
    (facts,) = [r for r in await reply.evaluated() if r.name == "facts"]
    assert facts.data["added"] == ["My name is Ada.", "I live in Oslo."]
    assert not any("extract facts" in prompt_text(r) for r in small_model.requests)


async def test_facts_are_scoped_where_they_were_learned(
    agent: AgentRuntime, small_model: FakeModel, say: Say
) -> None:
    small_model.queue(_facts("Ada lives in Oslo."))
    await (await agent.handle(say("I live in Oslo", room="dm-ada"))).evaluated()
    small_model.queue(_facts("Ada lives in Oslo."))
    await (await agent.handle(say("Testy, I live in Oslo", room="team", group=True))).evaluated()
    small_model.queue(_facts("Bob lives in Oslo."))
    await (await agent.handle(say("I live in Oslo", user="bob", room="dm-bob"))).evaluated()
    stored = await agent.store.get_memories(agent_id=agent.agent_id, type=MemoryType.FACT)
    found = {(m.entity_id, m.room_id, m.scope.value) for m in stored}
    # the same words from another user, or in another scope, are not duplicates
    assert found == {
        ("ada", "dm-ada", "direct"),
        ("ada", "team", "room"),
        ("bob", "dm-bob", "direct"),
    }


async def test_what_is_my_name_finds_the_senders_own_words_across_runs(
    bootstrap_host: PluginHost,
    character: Character,
    fake_model: FakeModel,
    small_model: FakeModel,
    minilm: Any,
    tmp_path: Any,
    say: Say,
) -> None:
    """No fact is extracted (the small model finds none), yet a later run in another
    direct room puts Ada's own earlier words in the prompt — and never Bob's."""
    from carrier_plugin_sql.store import SqlStore

    url = f"sqlite:///{tmp_path}/names.db"
    models = {"large": fake_model, "small": small_model, "embedding": minilm}
    async with (
        SqlStore(url) as store,
        AgentRuntime(character, host=bootstrap_host, store=store, models=models) as runtime,
    ):
        for message in (
            say("My name is Ada", room="dm-ada"),
            say("My name is Bob", user="bob", room="dm-bob"),
            say("Testy, my name is Carol", user="carol", room="lobby", group=True),
        ):
            await (await runtime.handle(message)).evaluated()
        assert await store.count_memories(agent_id=runtime.agent_id, type=MemoryType.FACT) == 0
    async with (
        SqlStore(url) as store,
        AgentRuntime(character, host=bootstrap_host, store=store, models=models) as runtime,
    ):
        await runtime.handle(say("what is my name?", room="dm-ada-2"))
        system = prompt_text(fake_model.requests[-1])
        section = system[system.index('<data source="relevant_memories">') :]
        assert "- My name is Ada" in section
        assert "Bob" not in system
        assert "Carol" not in system
        await runtime.handle(say("what is my name?", user="bob", room="dm-bob-2"))
        system = prompt_text(fake_model.requests[-1])
        assert "- My name is Bob" in system
        assert "Ada" not in system
