"""Providers: their sections, their token budgets, rotation, and a slow provider that
times out without stalling the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from carrier_plugin_bootstrap.providers import PROVIDERS

import carrier
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Provider
from carrier.runtime import AgentRuntime
from carrier.testing import EventRecorder, FakeModel, prompt_text
from carrier.types import (
    Attachment,
    Content,
    EventType,
    Goal,
    IncomingMessage,
    Memory,
    MemoryType,
    Objective,
    ProviderOutput,
    State,
)

Say = Callable[..., IncomingMessage]


def _big_character() -> Character:
    examples = [
        [
            {"name": "{{user1}}", "content": {"text": f"Question number {i}? " + "word " * 40}},
            {"name": "Testy", "content": {"text": f"Answer number {i}. " + "reply " * 40}},
        ]
        for i in range(30)
    ]
    return Character(
        name="Testy",
        bio=["A careful test agent."],
        lore=[f"Lore line {i} " + "history " * 30 for i in range(40)],
        messageExamples=examples,
    )


async def _state(agent: AgentRuntime, incoming: IncomingMessage) -> State:
    message = agent.receive(incoming)
    room = await agent.connect(message, incoming)
    message, _, _ = await agent.store_message(message)
    return await agent.compose_state(message, room, role=incoming.role)


async def test_every_section_fits_its_budget(
    bootstrap_host: PluginHost, sql_store, say: Say
) -> None:  # type: ignore[no-untyped-def]
    model = FakeModel()
    async with AgentRuntime(
        _big_character(),
        host=bootstrap_host,
        store=sql_store,
        models={"large": model, "small": model, "embedding": None},
    ) as agent:
        for i in range(40):
            await agent.store.create_memory(
                Memory(
                    agent_id=agent.agent_id,
                    entity_id="ada",
                    room_id="dm-ada",
                    type=MemoryType.FACT,
                    content=Content(text=f"Ada fact {i} " + "detail " * 30),
                )
            )
        attachment = Attachment(title="notes.txt", content_type="text/plain", text="x " * 5000)
        state = await _state(agent, say("hello", attachments=[attachment]))
    assert set(state.providers) >= {
        "character",
        "time",
        "entities",
        "sender_facts",
        "attachments",
        "actions",
    }
    for name, output in state.providers.items():
        budget = PROVIDERS[name].max_tokens
        assert budget is not None
        assert model.count_tokens(output.text) <= budget, name
    assert "knowledge" not in state.providers  # dynamic: never per message


async def test_character_examples_rotate_per_room_and_stay_within_one(
    bootstrap_host: PluginHost, sql_store, say: Say
) -> None:  # type: ignore[no-untyped-def]
    model = FakeModel()
    async with AgentRuntime(
        _big_character(),
        host=bootstrap_host,
        store=sql_store,
        models={"large": model, "small": model, "embedding": None},
    ) as agent:
        texts = {
            (await _state(agent, say(f"hi {i}", room=f"room-{i}"))).providers["character"].text
            for i in range(4)
        }
        # the same room: the same sample (a stable section, in the prompt's cached prefix)
        again = await _state(agent, say("hi 0", room="room-0"))
        same = await _state(agent, say("something else", room="room-0"))
    assert len(texts) == 4
    assert again.providers["character"].text == same.providers["character"].text
    assert "More examples of how Testy talks:" in again.providers["character"].text
    assert "User: Question number" in again.providers["character"].text
    assert "Question number 0?" not in again.providers["character"].text  # the persona's


async def test_sections_reach_the_prompt(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("ok")
    await agent.handle(say("Testy, hello", user="bob", group=True, room="team"))
    await agent.store.create_memory(
        Memory(
            agent_id=agent.agent_id,
            entity_id="ada",
            room_id="team",
            type=MemoryType.FACT,
            content=Content(text="Ada lives in Oslo."),
        )
    )
    await agent.store.create_memory(
        Memory(
            agent_id=agent.agent_id,
            entity_id=agent.agent_id,
            room_id="team",
            type=MemoryType.REFLECTION,
            content=Content(text="Bob greeted Testy."),
        )
    )
    goal = Goal(
        agent_id=agent.agent_id,
        room_id="team",
        name="ship it",
        objectives=[Objective(description="test", completed=True), Objective(description="tag")],
    )
    await agent.store.upsert_goal(goal)
    fake_model.queue("ok")
    link = Attachment(url="https://example.org/a.pdf", title="Spec", text="The spec says 42.")
    await agent.handle(
        say("Testy, read this", group=True, room="team", role="owner", attachments=[link])
    )
    system = prompt_text(fake_model.requests[-1])
    assert "Room: team (group)." in system
    assert "- Bob (id bob; member)" in system
    assert "- Ada (id ada; owner) wrote the current message" in system
    assert "- Testy (you)" in system
    assert "What you know about Ada:\n- Ada lives in Oslo." in system
    assert "Summary of the conversation so far: Bob greeted Testy." in system
    assert f"- 'ship it' (goal {goal.id}): 1/2 done, next is objective 2." in system
    assert "1. Spec (https://example.org/a.pdf):\nThe spec says 42." in system
    assert "- UPDATE_GOAL: Record progress on a goal" in system
    assert "- SEND_MESSAGE:" in system  # an owner is offered it


class _Slow(Provider):
    name = "slow"
    timeout_s = 0.2

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        await asyncio.sleep(10)
        return ProviderOutput(text="never")


class _SlowPlugin:
    @carrier.hookimpl
    def carrier_register_providers(self, providers) -> None:  # type: ignore[no-untyped-def]
        providers.add("slow", _Slow)


async def test_a_slow_provider_times_out_without_stalling_the_loop(
    bootstrap_host: PluginHost, character: Character, events: EventRecorder, say: Say
) -> None:
    bootstrap_host.register(_SlowPlugin(), name="slow")
    model = FakeModel()
    model.queue("Still here.")
    async with AgentRuntime(
        character, host=bootstrap_host, models={"large": model, "small": model, "embedding": None}
    ) as agent:
        started = time.perf_counter()
        reply = await agent.handle(say("hello"))
        elapsed = time.perf_counter() - started
    assert reply.texts == ["Still here."]
    assert elapsed < 2.0
    (failed,) = events.of(EventType.PROVIDER_FAILED)
    assert failed.data["provider"] == "slow"
    assert "timed out" in failed.data["error"]
    assert "The current date and time is" in prompt_text(model.requests[0])
