"""The relevant-memories provider: the sender's own earlier words that relate to the new
message, except those the history already shows, and never another user's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel, prompt_text
from carrier.types import IncomingMessage

Say = Callable[..., IncomingMessage]


@pytest.fixture
def carrier_settings() -> CarrierSettings:
    """A history of the 4 newest messages, so older words reach the prompt only
    through the provider."""
    return CarrierSettings(history_limit=4, _env_file=None)


@pytest.fixture
async def runtime(
    bootstrap_host: PluginHost,
    character: Character,
    fake_model: FakeModel,
    small_model: FakeModel,
    embedder: FakeModel,
    tmp_path: Path,
) -> AsyncIterator[AgentRuntime]:
    models = {"large": fake_model, "small": small_model, "embedding": embedder}
    async with (
        SqlStore(f"sqlite:///{tmp_path}/recall.db") as store,
        AgentRuntime(character, host=bootstrap_host, store=store, models=models) as agent,
    ):
        yield agent


def _section(system: str) -> str:
    start = system.index('<data source="relevant_memories">')
    return system[start : system.index("</data>", start)]


async def test_earlier_words_beyond_the_history_are_recalled_once_and_only_for_their_author(
    runtime: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    await runtime.handle(say("my cat is named Tom", room="dm-ada"))
    await runtime.handle(say("my cat is named Rex", user="bob", room="dm-bob"))
    for number in range(4):  # pushes Ada's first words out of her room's history
        await runtime.handle(say(f"hello there number {number}", room="dm-ada"))
    await runtime.handle(say("my cat is cute", room="dm-ada"))  # still in the history
    await runtime.handle(say("what is my cat named?", room="dm-ada"))

    system = prompt_text(fake_model.requests[-1])
    section = _section(system)
    assert "- my cat is named Tom" in section
    assert "my cat is cute" not in section  # the history shows it already
    assert "my cat is cute" in system
    assert "Rex" not in system

    await runtime.handle(say("what is my cat named?", user="bob", room="dm-bob"))
    system = prompt_text(fake_model.requests[-1])
    assert "Tom" not in system
    assert "cute" not in system
    assert "my cat is named Rex" in system


@pytest.mark.parametrize("small", [True, False], ids=["small-model", "capable-model"])
async def test_a_small_model_is_reminded_only_of_statements(
    runtime: AgentRuntime, fake_model: FakeModel, say: Say, small: bool
) -> None:
    fake_model.small = small
    for user, cat in (("ada", "Tom"), ("bob", "Rex")):
        room = f"dm-{user}"
        await runtime.handle(say(f"my cat is named {cat}", user=user, room=room))
        await runtime.handle(say("tell me about my cat named", user=user, room=room))
        await runtime.handle(say("is my cat named well?", user=user, room=room))
        for number in range(4):  # pushes those out of the room's history
            await runtime.handle(say(f"hello there number {number}", user=user, room=room))
        await runtime.handle(say("what is my cat named?", user=user, room=room))

        section = _section(prompt_text(fake_model.requests[-1]))
        assert f"- my cat is named {cat}" in section  # a statement: always recalled
        # an earlier request or question only for a model that can use it
        assert ("- tell me about my cat named" in section) is not small
        assert ("- is my cat named well?" in section) is not small
        assert ("Tom" in section) is (user == "ada")  # only the sender's own words
        assert ("Rex" in section) is (user == "bob")
