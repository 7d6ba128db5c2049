"""A small large model (``Model.small``: the default local SmolLM2-135M) gets a small
prompt and no evaluator it cannot serve: no date or time (it answers about them);
no room/entities block in a direct chat (a group keeps it); goal progress and
reflection off, fact extraction on. Two users."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carrier.character import Character
from carrier.host import PluginHost
from carrier.prompts import DATA_NOTICE
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import Goal, IncomingMessage, Objective

Say = Callable[..., IncomingMessage]
SMALL_DEFAULT = '{"facts": [], "completed": [], "summary": "Nothing much happened."}'


async def test_a_small_model_gets_a_small_prompt_and_fewer_evaluators(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store,  # type: ignore[no-untyped-def]
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_REFLECTION_INTERVAL", "2")
    large, small = FakeModel(), FakeModel(default_text=SMALL_DEFAULT)
    large.small = True
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        await agent.store.upsert_goal(
            Goal(
                agent_id=agent.agent_id,
                room_id=None,
                name="learn names",
                objectives=[Objective(description="ask")],
            )
        )
        ran: set[str] = set()
        for user in ("ada", "bob"):
            for text in ("hello there", "I like green tea a lot", "I live in Oslo now"):
                reply = await agent.handle(say(text, user=user))
                ran |= {r.name for r in await reply.evaluated()}
        direct = large.requests[-1].messages[-1].content
        await agent.handle(say("Testy, hi all", user="ada", group=True, room="team"))
        await agent.handle(say("Testy, hello", user="bob", group=True, room="team"))
        group = large.requests[-1].messages[-1].content
    assert "facts" in ran
    assert "goals" not in ran
    assert "reflection" not in ran
    assert "The current date and time" not in direct  # no time: it answers about it
    # its data sections (here the open goal) come without the notice, which it parrots
    assert '<data source="goals">' in direct
    assert DATA_NOTICE not in direct
    assert "In this conversation:" not in direct  # a direct chat: no entities block
    assert "In this conversation:" in group
    assert "Ada" in group
    assert "Bob" in group


async def test_a_capable_model_gets_the_data_notice(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store,
    say: Say,  # type: ignore[no-untyped-def]
) -> None:
    large, small = FakeModel(), FakeModel(default_text=SMALL_DEFAULT)
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        await agent.store.upsert_goal(
            Goal(agent_id=agent.agent_id, room_id=None, name="learn names", objectives=[])
        )
        for user in ("ada", "bob"):
            await agent.handle(say("hello there", user=user))
            direct = large.requests[-1].messages[-1].content
            assert direct.index(DATA_NOTICE) < direct.index('<data source="goals">')
