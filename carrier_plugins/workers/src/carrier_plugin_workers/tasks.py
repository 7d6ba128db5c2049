"""Scheduled tasks on the workers (docs/tasks.md): each due run is a deferred job.

procrastinate's periodic decorators are static, so a worker *plans* instead: every
``task_poll_s`` it reads its agents' tasks due within ``task_horizon_s`` and defers
jobs, :data:`TASK_RUN`, scheduled at the runs' time on the agent's queue: one per due
time, or more when many runs fall due at once (``task_batch`` runs each).
The store's ``add_cache`` on ``taskjob:{agent_id}:{task_id}:{due_at}`` lets one
worker (of any number) defer a given run; the job then claims the run with the
kernel's ``Tasks.run`` (``taskrun:...``), so even a run deferred twice — its first
job lost with a crashed worker, re-deferred after the marker expired — executes once.
A run that fails is rescheduled by the kernel (backoff), which is a new due run. The
job carries the task as planned, so a task cancelled within ``task_horizon_s`` of its
time may still run that once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import procrastinate

from carrier.types import Task
from carrier_plugin_workers.queue import QUEUE_ERRORS, queue_for

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = ["TASK_RUN", "plan_tasks", "register_task_runner"]

logger = logging.getLogger("carrier.workers")

_PLAN_ERRORS: tuple[type[BaseException], ...] = (
    *QUEUE_ERRORS,
    procrastinate.exceptions.ProcrastinateException,
)

#: The procrastinate task that runs one due run of a scheduled task.
TASK_RUN = "carrier.run_task"


def register_task_runner(app: procrastinate.App, runtimes: Mapping[str, AgentRuntime]) -> None:
    """Add :data:`TASK_RUN` to ``app``: claim and execute due runs, concurrently (no job
    retries: the kernel retries a failed task as a new due run)."""

    @app.task(name=TASK_RUN, pass_context=False)
    async def run_task(agent_id: str, runs: list[dict[str, Any]]) -> None:
        runtime = runtimes.get(agent_id)
        if runtime is None:
            logger.warning("Task runs of agent %s: this worker does not host it", agent_id)
            return
        # the task as planned spares a read; each run's claim keeps it once either way
        await asyncio.gather(
            *(
                runtime.tasks.run(
                    run["task"]["id"], run["due_at"], task=Task.model_validate(run["task"])
                )
                for run in runs
            )
        )


async def plan_once(
    app: procrastinate.App,
    runtimes: Mapping[str, AgentRuntime],
    settings: WorkersSettings,
    tried: dict[str, float] | None = None,
) -> int:
    """Defer jobs for the due runs not deferred yet; how many runs this call deferred.

    Runs due at the same moment share a job, up to ``task_batch`` each (1,000 tasks due
    at once are 20 jobs, not 1,000: far less queue work, still spread over the workers).
    ``tried`` (marker → when to try again) spares the store the markers this worker
    tried already, until they expire."""
    deferred = 0
    tried = {} if tried is None else tried
    clock = time.monotonic()
    for marker in [m for m, again in tried.items() if again <= clock]:
        del tried[marker]
    # the marker outlives the run's time by a margin: a job lost with its worker is
    # deferred again after that, and the kernel's claim stops a repeat
    ttl = settings.task_horizon_s + settings.stalled_after_s + 60.0
    for agent_id, runtime in runtimes.items():
        batches: dict[float, list[dict[str, Any]]] = {}
        for task in await runtime.tasks.due(horizon_s=settings.task_horizon_s):
            at = task.due_at or 0.0
            marker = f"taskjob:{agent_id}:{task.id}:{at!r}"
            if marker in tried:
                continue
            tried[marker] = clock + ttl
            if await runtime.store.add_cache(marker, {"at": at}, ttl_s=ttl):
                batches.setdefault(at, []).append(
                    {"due_at": at, "task": task.model_dump(mode="json")}
                )
        for at, runs in batches.items():
            job = app.configure_task(
                TASK_RUN,
                queue=queue_for(agent_id),
                schedule_at=dt.datetime.fromtimestamp(at, dt.UTC),
            )
            for start in range(0, len(runs), settings.task_batch):
                chunk = runs[start : start + settings.task_batch]
                await job.defer_async(agent_id=agent_id, runs=cast(Any, chunk))
                deferred += len(chunk)
    return deferred


async def plan_tasks(
    app: procrastinate.App, runtimes: Mapping[str, AgentRuntime], settings: WorkersSettings
) -> None:
    """Plan forever (a worker session cancels it), every ``task_poll_s``; also apply
    expired approvals' defaults every ``task_sweep_s``."""
    loop = asyncio.get_running_loop()
    swept = loop.time()
    tried: dict[str, float] = {}
    while True:
        try:
            await plan_once(app, runtimes, settings, tried)
            if loop.time() - swept >= settings.task_sweep_s:
                swept = loop.time()
                for runtime in runtimes.values():
                    await runtime.approvals.recover()
        except _PLAN_ERRORS as exc:
            logger.warning("Planning task runs skipped: %s", exc)
        except Exception:
            logger.exception("Planning task runs failed")
        await asyncio.sleep(settings.task_poll_s)
