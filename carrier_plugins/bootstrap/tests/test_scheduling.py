"""SCHEDULE_TASK, the follow_up and goal workers, and cron (docs/tasks.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, TaskStatus


async def test_the_agent_schedules_a_follow_up_that_runs_in_its_room(
    agent: AgentRuntime, fake_model: FakeModel, say: Callable[..., IncomingMessage]
) -> None:
    fake_model.queue(
        "I will remind you.",
        actions=[("SCHEDULE_TASK", {"text": "Time to stretch!", "in_s": 0})],
    )
    reply = await agent.handle(say("remind me to stretch", user="ada"))
    (result,) = reply.action_results
    assert result.success, result.error
    (task,) = await agent.tasks.list()
    assert task.worker == "follow_up"
    assert task.room_id == "dm-ada"
    assert task.created_by == "ada"
    assert await agent.tasks.run_due() == 1
    said = await agent.store.get_memories(agent_id=agent.agent_id, room_id="dm-ada")
    assert "Time to stretch!" in [m.content.text for m in said]
    assert (await agent.tasks.get(task.id)).status is TaskStatus.DONE  # type: ignore[union-attr]


async def test_limits_come_from_the_character(
    bootstrap_host: PluginHost,
    fake_model: FakeModel,
    small_model: FakeModel,
    sql_store: SqlStore,
    say: Callable[..., IncomingMessage],
) -> None:
    character = Character(
        name="Testy",
        settings={"BOOTSTRAP_MAX_SCHEDULED_TASKS": 1, "BOOTSTRAP_MIN_TASK_INTERVAL_S": 3600},
    )
    fake_model.queue("", actions=[("SCHEDULE_TASK", {"text": "ping", "every_s": 60})])
    fake_model.queue("", actions=[("SCHEDULE_TASK", {"text": "ping", "every_s": 7200})])
    fake_model.queue("", actions=[("SCHEDULE_TASK", {"text": "again", "cron": "*/5 * * * *"})])
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": fake_model, "small": small_model, "embedding": None},
    ) as agent:
        first = await agent.handle(say("ping me every minute"))
        too_often, fine = first.action_results  # the model tried again, within limits
        assert "at least 3600" in (too_often.error or "")
        assert fine.success, fine.error
        over = await agent.handle(say("and every five minutes"))
        assert "limit" in (over.action_results[0].error or "")
        (task,) = await agent.tasks.list()
        assert task.interval_s == 7200


async def test_cron_tasks_run_at_the_expressions_times(agent: AgentRuntime) -> None:
    task = await agent.tasks.schedule("digest", worker="follow_up", cron="*/5 * * * *")
    assert task.due_at is not None
    assert task.due_at % 300 == 0
    assert time.time() < task.due_at <= time.time() + 300


async def test_a_goal_task_works_the_goal_autonomously(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.default_text = "Working on it."
    task = await agent.tasks.schedule(
        "tidy", worker="goal", payload={"text": "Tidy the notes", "steps": 1}
    )
    asked = len(fake_model.requests)
    assert await agent.tasks.run(task.id, task.due_at or 0) is True
    assert len(fake_model.requests) > asked
    assert (await agent.tasks.get(task.id)).status is TaskStatus.DONE  # type: ignore[union-attr]
    goals = await agent.store.get_goals(agent_id=agent.agent_id)
    assert [g.name for g in goals] == ["Tidy the notes"]


@pytest.mark.parametrize("expression", ["not a cron", "61 * * * *"])
async def test_an_invalid_cron_is_refused(
    agent: AgentRuntime,
    fake_model: FakeModel,
    say: Callable[..., IncomingMessage],
    expression: str,
) -> None:
    fake_model.queue("", actions=[("SCHEDULE_TASK", {"text": "x", "cron": expression})])
    reply = await agent.handle(say("schedule it"))
    assert not reply.action_results[0].success
    assert await agent.tasks.list() == []
