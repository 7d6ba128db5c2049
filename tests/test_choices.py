"""Choices (docs/tasks.md#choices): the right user's answer resolves one, another's not."""

from __future__ import annotations

import pytest

import carrier
from carrier import (
    AgentRuntime,
    Character,
    IncomingMessage,
    InputError,
    PluginHost,
    RoomType,
    Task,
    TaskWorker,
)

CHOSEN: list[dict[str, object]] = []


class Apply(TaskWorker):
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        CHOSEN.append(task.payload)


class Plugin:
    @carrier.hookimpl
    def carrier_register_task_workers(self, task_workers):  # type: ignore[no-untyped-def]
        task_workers.add("apply", Apply)


def _say(text: str, user: str, room: str = "team") -> IncomingMessage:
    return IncomingMessage(text=text, user_id=user, room_id=room, room_type=RoomType.GROUP)


@pytest.fixture
async def agent() -> AgentRuntime:
    CHOSEN.clear()
    host = PluginHost(autoload=False)
    host.register(Plugin(), name="apply")
    runtime = AgentRuntime(Character(name="Ada"), host=host, models={"large": "echo"})
    await runtime.start()
    yield runtime  # type: ignore[misc]
    await runtime.stop()


async def test_the_allowed_users_answer_resolves_it_and_another_users_does_not(
    agent: AgentRuntime,
) -> None:
    await agent.handle(_say("hello", "alice"))
    choice = await agent.choices.ask(
        "team",
        "Ship which?",
        ["Blue", "Green"],
        allowed=["alice"],
        worker="apply",
        payload={"release": 7},
    )
    said = await agent.store.get_memories(agent_id=agent.agent_id, room_id="team")
    assert any("1. Blue" in m.content.text and "2. Green" in m.content.text for m in said)
    await agent.handle(_say("green", "bob"))  # not allowed
    await agent.handle(_say("purple", "alice"))  # no such option
    assert [c.id for c in await agent.choices.list("team")] == [choice.id]
    await agent.handle(_say("Green!", "alice"))
    resolved = await agent.choices.get("team", choice.id)
    assert resolved is not None
    assert resolved.chosen == "Green"
    assert resolved.chosen_by == "alice"
    assert await agent.choices.list("team") == []
    await agent.handle(_say("blue", "alice"))  # answered already: nothing changes
    assert (await agent.choices.get("team", choice.id)).chosen == "Green"  # type: ignore[union-attr]
    assert await agent.tasks.run_due() == 1
    assert CHOSEN == [{"release": 7, "choice": "Green", "chosen_by": "alice"}]


async def test_anyone_may_answer_an_open_choice_by_number_in_its_room_only(
    agent: AgentRuntime,
) -> None:
    await agent.handle(_say("hello", "carol", room="other"))
    await agent.handle(_say("hello", "dan"))
    choice = await agent.choices.ask("team", "Lunch?", ["pizza", "soup"])
    await agent.handle(_say("1", "carol", room="other"))  # another room
    assert (await agent.choices.get("team", choice.id)).chosen is None  # type: ignore[union-attr]
    await agent.handle(_say("2", "dan"))
    assert (await agent.choices.get("team", choice.id)).chosen == "soup"  # type: ignore[union-attr]
    with pytest.raises(InputError):
        await agent.choices.ask("team", "Only one?", ["x"])
