"""Scheduled work (docs/tasks.md): the SCHEDULE_TASK action, the ``follow_up`` and
``goal`` task workers, and cron (croniter) for ``carrier_choose_next_run``.

The agent schedules its own follow-ups within limits the character sets
(``BOOTSTRAP_MAX_SCHEDULED_TASKS``, ``BOOTSTRAP_MIN_TASK_INTERVAL_S``,
``BOOTSTRAP_MAX_TASK_DELAY_S``); a ``goal`` task works a goal autonomously on each run.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from carrier.errors import ToolRetry
from carrier.protocols import TaskWorker
from carrier.types import ActionResult, Content, Role, Task, TaskStatus
from carrier_plugin_bootstrap.actions import BootstrapAction
from carrier_plugin_bootstrap.config import settings_for

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, State

__all__ = ["FollowUpWorker", "GoalWorker", "ScheduleTaskAction", "next_cron_run"]

#: Tag of the tasks SCHEDULE_TASK creates (its limit counts them).
TAG = "schedule_task"


def next_cron_run(expression: str, after: float) -> float:
    """The next time after ``after`` (epoch seconds, UTC) that ``expression`` names."""
    from croniter import croniter  # type: ignore[import-untyped]

    start = dt.datetime.fromtimestamp(after, dt.UTC)
    return float(croniter(expression, start).get_next(float))


def valid_cron(expression: str) -> bool:
    """Whether croniter understands ``expression``."""
    from croniter import croniter

    return bool(croniter.is_valid(expression))


class ScheduleArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["follow_up", "goal"] = Field(
        default="follow_up",
        description="follow_up: say `text` in this room then; goal: work toward the goal "
        "`text` autonomously on each run.",
    )
    text: str = Field(min_length=1, max_length=2000, description="What to say, or the goal.")
    in_s: float | None = Field(default=None, ge=0, description="First run in this many seconds.")
    every_s: float | None = Field(default=None, gt=0, description="Repeat every N seconds.")
    cron: str | None = Field(
        default=None, max_length=100, description="Repeat on a cron expression (UTC)."
    )


class ScheduleTaskAction(BootstrapAction):
    """Schedule a follow-up message or autonomous goal work, once or repeating."""

    name = "SCHEDULE_TASK"
    similes = ("REMIND_ME", "SCHEDULE", "FOLLOW_UP_LATER")
    description = (
        "Schedule work for later: a follow-up message in this room (kind=follow_up) or "
        "autonomous work on a goal (kind=goal), once after in_s seconds, or repeating "
        "every every_s seconds or on a cron expression."
    )
    parameters = ScheduleArguments
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        [
            {"name": "{{user1}}", "content": {"text": "Remind me to stretch in an hour."}},
            {
                "name": "{{agent}}",
                "content": {
                    "text": "I will.",
                    "actions": ["SCHEDULE_TASK"],
                    "arguments": {"text": "Time to stretch!", "in_s": 3600},
                },
            },
        ]
    ]

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        return settings_for(runtime).max_scheduled_tasks > 0

    async def handler(
        self,
        runtime: AgentRuntime,
        message: Memory,
        state: State,
        arguments: BaseModel | None,
    ) -> ActionResult:
        assert isinstance(arguments, ScheduleArguments)
        limits = settings_for(runtime)
        if arguments.every_s is not None and arguments.cron is not None:
            raise ToolRetry("Give every_s or cron, not both.")
        if arguments.every_s is not None and arguments.every_s < limits.min_task_interval_s:
            raise ToolRetry(
                f"every_s must be at least {limits.min_task_interval_s:g} seconds "
                f"(BOOTSTRAP_MIN_TASK_INTERVAL_S)."
            )
        if (arguments.in_s or 0) > limits.max_task_delay_s:
            raise ToolRetry(
                f"in_s must be at most {limits.max_task_delay_s:g} seconds "
                f"(BOOTSTRAP_MAX_TASK_DELAY_S)."
            )
        if arguments.cron is not None and not valid_cron(arguments.cron):
            raise ToolRetry(f"{arguments.cron!r} is not a valid cron expression.")
        mine = [
            t
            for t in await runtime.store.get_tasks(agent_id=runtime.agent_id, tags=[TAG])
            if t.status is TaskStatus.SCHEDULED
        ]
        if len(mine) >= limits.max_scheduled_tasks:
            return ActionResult(
                name=self.name,
                success=False,
                error=f"The agent has {len(mine)} scheduled tasks, its limit "
                f"(BOOTSTRAP_MAX_SCHEDULED_TASKS); nothing was scheduled.",
            )
        key = state.idempotency_key
        task = await runtime.tasks.schedule(
            arguments.text[:80],
            worker=arguments.kind,
            in_s=arguments.in_s,
            interval_s=arguments.every_s,
            cron=arguments.cron,
            room_id=message.room_id,
            payload={"text": arguments.text, "source": message.content.source},
            created_by=message.entity_id,
            tags=[TAG],
            # a re-run with the same idempotency key replaces the task, never adds one
            task_id=None if key is None else f"{runtime.agent_id}:{key}",
        )
        when = dt.datetime.fromtimestamp(task.due_at or 0, dt.UTC).isoformat(timespec="seconds")
        return ActionResult(
            name=self.name,
            text=f"Scheduled {arguments.kind} task {task.id}; first run at {when}.",
            data={"task_id": task.id, "due_at": task.due_at},
        )


class FollowUpWorker(TaskWorker):
    """Say the task's ``payload["text"]`` in its room."""

    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        if task.room_id is None:
            raise ValueError(f"Task {task.id} has no room to follow up in.")
        await runtime.send_message(
            task.room_id, Content(text=str(task.payload["text"]), source=task.payload.get("source"))
        )


class GoalWorker(TaskWorker):
    """Work toward ``payload["text"]`` autonomously (``payload["steps"]`` steps, default
    3), with the MEMBER role: a scheduled goal never acts with more rights than a user."""

    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        steps = int(task.payload.get("steps", 3))
        await runtime.run_autonomous(str(task.payload["text"]), max_steps=steps, role=Role.MEMBER)
