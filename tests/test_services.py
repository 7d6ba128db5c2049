"""What the runtime offers actions, providers and evaluators: setup, embeddings,
sending to other rooms, participant state, provider budgets, structured output."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import carrier
from carrier.builtin.memory_store import InMemoryStore
from carrier.protocols import Provider
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.types import (
    Content,
    EventType,
    IncomingMessage,
    Memory,
    ModelRequest,
    ParticipantState,
    ProviderOutput,
    State,
)


class ChattyProvider(Provider):
    name = "chatty"
    max_tokens = 20
    setups: ClassVar[list[str]] = []

    async def setup(self, runtime: AgentRuntime) -> None:
        self.setups.append(runtime.agent_id)

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        return ProviderOutput(text="word " * 500)


class _Plugin:
    @carrier.hookimpl
    def carrier_register_providers(self, providers: Any) -> None:
        providers.add("chatty", ChattyProvider)


@pytest.fixture
async def agent(host, character, fake_model):
    ChattyProvider.setups.clear()
    host.register(_Plugin(), name="chatty")
    runtime = AgentRuntime(
        character, host=host, store=InMemoryStore(), models={"large": fake_model, "embedding": None}
    )
    async with runtime:
        yield runtime


async def test_setup_runs_once_per_runtime_and_provider_text_fits_its_budget(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    await agent.handle(IncomingMessage(text="one", room_id="a"))
    await agent.handle(IncomingMessage(text="two", room_id="a"))
    assert ChattyProvider.setups == [agent.agent_id]
    system = prompt_text(fake_model.requests[-1])
    # an untrusted provider's text sits in its own delimited data section
    block = next(b for b in system.split("\n\n") if b.startswith('<data source="chatty">'))
    assert block.endswith("</data>")
    section = block.splitlines()[1]
    assert section.endswith(" …")
    assert agent.model().primary.count_tokens(section) <= 20 + 2


async def test_send_message_to_another_room(agent: AgentRuntime, events) -> None:
    memory = await agent.send_message("other-room", Content(text="hello over there"))
    stored = await agent.store.get_memories(agent_id=agent.agent_id, room_id="other-room")
    assert [m.content.text for m in stored] == ["hello over there"]
    assert memory.entity_id == agent.agent_id
    assert events.of(EventType.MESSAGE_SENT)[0].room_id == "other-room"


async def test_muted_room_is_ignored_until_unmuted(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    await agent.handle(IncomingMessage(text="hi", room_id="r"))
    await agent.set_participant_state("r", agent.agent_id, ParticipantState.MUTED)
    muted = await agent.handle(IncomingMessage(text="are you there?", room_id="r"))
    assert muted.ignored
    await agent.set_participant_state("r", agent.agent_id, ParticipantState.NONE)
    back = await agent.handle(IncomingMessage(text="now?", room_id="r"))
    assert back.texts == ["ok"]
    assert len(fake_model.requests) == 2


async def test_embed_is_none_without_an_embedding_model(agent: AgentRuntime) -> None:
    assert await agent.embed(["x"]) is None


async def test_structured_output_parses_json_text_and_falls_back_when_there_is_none(
    host, character
) -> None:
    prose = FakeModel(name="prose", default_text="Sure! Here are some ideas.")
    strict = FakeModel(name="strict", default_text='```json\n{"ideas": ["a", "b"]}\n```')

    class Two:
        @carrier.hookimpl
        def carrier_register_models(self, models: Any) -> None:
            models.add("prose", lambda **_: prose)
            models.add("strict", lambda **_: strict)

    host.register(Two(), name="two")
    runtime = AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": "prose -> strict", "embedding": None},
    )
    async with runtime:
        response = await runtime.generate(ModelRequest(response_schema={"type": "object"}))
    assert response.structured == {"ideas": ["a", "b"]}
    assert len(prose.requests) == 1


async def test_a_failed_start_closes_the_store_it_opened(host, character) -> None:
    from carrier.builtin.memory_store import InMemoryStore
    from carrier.errors import UnknownNameError

    closed: list[bool] = []

    class TrackedStore(InMemoryStore):
        async def close(self) -> None:
            closed.append(True)

    class Stores:
        @carrier.hookimpl
        def carrier_register_stores(self, stores: Any) -> None:
            stores.add("tracked", TrackedStore)

    host.register(Stores(), name="tracked")
    host.carrier_settings.database_url = "tracked://"
    runtime = AgentRuntime(character, host=host, models={"large": "no-such-model"})
    with pytest.raises(UnknownNameError, match="No model named 'no-such-model'"):
        async with runtime:
            pass
    assert closed == [True]
