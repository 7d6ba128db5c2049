"""Scheduled tasks on the workers (docs/tasks.md): each due run is a deferred job.

procrastinate's periodic decorators are static, so a worker *plans* instead: every
``task_poll_s`` it reads its agents' tasks due within ``task_horizon_s`` and defers
one job per run, :data:`TASK_RUN`, scheduled at the run's time on the agent's queue,
all in one statement. A job that a worker fetches also claims up to ``task_batch - 1``
other due jobs of its queue in one statement and runs them all concurrently (fetching
1,000 jobs one by one kept runs due together seconds late).
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
from typing import TYPE_CHECKING, Any

import procrastinate

from carrier.types import Task
from carrier_plugin_workers.queue import QUEUE_ERRORS, queue_for
from carrier_plugin_workers.retries import recording_outcome

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

# A job of TASK_RUN takes on other due TASK_RUN jobs of its queue in one statement, as
# procrastinate's fetch would one by one (status ``doing`` under this worker, so the
# stalled-worker sweep requeues them if it dies), and finishes them in one statement.
# procrastinate's fetch costs a few milliseconds of server time per job: 1,000 runs due
# at once were seconds late. Written against procrastinate 3.10's schema (pinned).
_CLAIM = """
UPDATE procrastinate_jobs SET status = 'doing', worker_id = %(worker_id)s
WHERE id IN (
    SELECT id FROM procrastinate_jobs
    WHERE queue_name = %(queue)s AND task_name = %(task)s AND status = 'todo'
        AND lock IS NULL AND scheduled_at <= now()
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, args
"""
# as procrastinate_finish_job_v1 does, for the claimed jobs this worker still holds
_DELETE = """
DELETE FROM procrastinate_jobs
WHERE id = ANY(%(ids)s) AND status = 'doing' AND worker_id = %(worker_id)s
"""
_KEEP = """
UPDATE procrastinate_jobs
SET status = %(status)s::procrastinate_job_status, abort_requested = false,
    attempts = attempts + 1
WHERE id = ANY(%(ids)s) AND status = 'doing' AND worker_id = %(worker_id)s
"""


def register_task_runner(
    app: procrastinate.App, runtimes: Mapping[str, AgentRuntime], settings: WorkersSettings
) -> None:
    """Add :data:`TASK_RUN` to ``app``: each job is one due run (older jobs may carry a
    list); it claims up to ``task_batch - 1`` other due runs' jobs and executes them all
    concurrently. No job retries: the kernel retries a failed task as a new due run."""

    async def execute(args: dict[str, Any]) -> None:
        runtime = runtimes.get(str(args.get("agent_id")))
        if runtime is None:
            logger.warning("Task runs of agent %s: this worker does not host it", args["agent_id"])
            return
        # one run (a job deferred by an older worker: a few); the task as planned spares
        # a read, and each run's claim keeps it once either way
        tasks = [(Task.model_validate(run["task"]), run["due_at"]) for run in args["runs"]]
        await asyncio.gather(*(runtime.tasks.run(t.id, at, task=t) for t, at in tasks))

    @app.task(name=TASK_RUN, pass_context=True)
    async def run_task(
        context: procrastinate.JobContext, agent_id: str, runs: list[dict[str, Any]]
    ) -> None:
        job = context.job
        others: list[dict[str, Any]] = []
        if settings.task_batch > 1 and job.worker_id is not None:
            others = await app.connector.execute_query_all_async(
                query=_CLAIM,
                worker_id=job.worker_id,
                queue=job.queue,
                task=TASK_RUN,
                limit=settings.task_batch - 1,
            )
        own, *outcomes = await asyncio.gather(
            execute({"agent_id": agent_id, "runs": runs}),
            *(execute(row["args"]) for row in others),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                logger.warning("A due task run failed: %s", outcome)
        ok = [row["id"] for row, out in zip(others, outcomes, strict=True) if out is None]
        failed = [row["id"] for row, out in zip(others, outcomes, strict=True) if out is not None]
        done = _KEEP if settings.keep_jobs else _DELETE
        await _finish(app, ok, done, "succeeded", worker_id=job.worker_id)
        await _finish(app, failed, _KEEP, "failed", worker_id=job.worker_id)
        if isinstance(own, BaseException):
            raise own


async def _finish(
    app: procrastinate.App, ids: list[int], query: str, status: str, *, worker_id: int | None
) -> None:
    if ids:
        await recording_outcome()(
            app.connector.execute_query_async,
            query=query,
            ids=ids,
            status=status,
            worker_id=worker_id,
        )


async def plan_once(
    app: procrastinate.App,
    runtimes: Mapping[str, AgentRuntime],
    settings: WorkersSettings,
    tried: dict[str, float] | None = None,
) -> int:
    """Defer a job for each due run not deferred yet, all in one statement; how many
    runs this call deferred. ``tried`` (marker → when to try again) spares the store
    the markers this worker tried already, until they expire."""
    from procrastinate.jobs import Job

    tried = {} if tried is None else tried
    clock = time.monotonic()
    for marker in [m for m, again in tried.items() if again <= clock]:
        del tried[marker]
    # the marker outlives the run's time by a margin: a job lost with its worker is
    # deferred again after that, and the kernel's claim stops a repeat
    ttl = settings.task_horizon_s + settings.stalled_after_s + 60.0
    jobs: list[Job] = []
    for agent_id, runtime in runtimes.items():
        for task in await runtime.tasks.due(horizon_s=settings.task_horizon_s):
            at = task.due_at or 0.0
            marker = f"taskjob:{agent_id}:{task.id}:{at!r}"
            if marker in tried:
                continue
            tried[marker] = clock + ttl
            if await runtime.store.add_cache(marker, {"at": at}, ttl_s=ttl):
                run: dict[str, Any] = {"due_at": at, "task": task.model_dump(mode="json")}
                jobs.append(
                    Job(
                        queue=queue_for(agent_id),
                        lock=None,
                        queueing_lock=None,
                        task_name=TASK_RUN,
                        task_kwargs={"agent_id": agent_id, "runs": [run]},
                        scheduled_at=dt.datetime.fromtimestamp(at, dt.UTC),
                    )
                )
    if jobs:  # one job per run, all deferred in one statement
        await app.job_manager.batch_defer_jobs_async(jobs)
    return len(jobs)


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
