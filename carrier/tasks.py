"""Scheduled tasks (docs/tasks.md, DESIGN §9): rows in the store, run by task workers.

A :class:`~carrier.types.Task` with a ``worker`` (registered through
``carrier_register_task_workers``) runs when its ``due_at`` comes: once, every
``interval_s`` seconds, or at each time of its ``cron`` expression — the kernel parses
no cron: it asks ``carrier_choose_next_run``, which the plugin that offers cron
answers. Each due run is **claimed** before it runs, with ``add_cache`` on
``taskrun:{agent_id}:{task_id}:{due_at}``, so however many processes (or deferred
jobs) look at one due run, exactly one executes it. A failing run is retried after
``backoff_s`` (doubling) until ``max_attempts``, then the task is ``failed``.

In one process the embedded :func:`run_scheduler` (stdlib only) polls the store and
runs what is due (``carrier start`` and ``carrier tasks run`` run it); with the
workers plugin each due run becomes a deferred job scheduled at its time instead.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError, UnknownNameError
from carrier.steps import RECORD_TTL_S
from carrier.types import Task, TaskStatus, now

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = ["Tasks", "run_scheduler"]

logger = logging.getLogger("carrier.tasks")

#: At most this many task runs of one agent at once in one process.
CONCURRENCY = 64


class Tasks:
    """An agent's scheduled tasks: ``runtime.tasks``."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    async def schedule(
        self,
        name: str,
        *,
        worker: str,
        at: float | None = None,
        in_s: float | None = None,
        interval_s: float | None = None,
        cron: str | None = None,
        room_id: str | None = None,
        payload: dict[str, Any] | None = None,
        max_attempts: int = 3,
        backoff_s: float = 1.0,
        task_id: str | None = None,
        created_by: str | None = None,
        tags: Sequence[str] = (),
    ) -> Task:
        """Store a task for ``worker``: first due ``at`` (epoch seconds), or ``in_s``
        from now, or now; then every ``interval_s`` seconds or at each ``cron`` time.
        ``task_id`` makes scheduling idempotent (the same id replaces the task).

        Raises:
            UnknownNameError: No task worker of that name is registered.
            ConfigurationError: A cron expression, but no plugin parses cron.
        """
        runtime = self._runtime
        runtime.host.task_workers.entry(worker)  # UnknownNameError with suggestions
        task = Task(
            agent_id=runtime.agent_id,
            name=name,
            worker=worker,
            room_id=room_id,
            payload=dict(payload or {}),
            interval_s=interval_s,
            cron=cron,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            created_by=created_by,
            tags=list(tags),
            **({"id": task_id} if task_id else {}),
        )
        if at is not None:
            due = at
        elif in_s is not None:
            due = now() + in_s
        elif cron is not None:
            due = self.next_run(task, now())
        else:
            due = now()
        task.due_at = due
        await runtime.store.upsert_task(task)
        return task

    def next_run(self, task: Task, after: float) -> float:
        """When a cron task runs next after ``after``, as the cron plugin says."""
        found = self._runtime.host.choose("carrier_choose_next_run", task=task, after=after)
        if found is None:
            raise ConfigurationError(
                f"Task {task.name!r} has the cron expression {task.cron!r}, but no installed "
                f"plugin parses cron (carrier_choose_next_run); install carrier-plugin-bootstrap "
                f"or use interval_s."
            )
        return float(found)

    async def list(self) -> list[Task]:
        """Every task of the agent, by due time."""
        return await self._runtime.store.get_tasks(agent_id=self._runtime.agent_id)

    async def get(self, task_id: str) -> Task | None:
        return await self._runtime.store.get_task(task_id, agent_id=self._runtime.agent_id)

    async def cancel(self, task_id: str) -> bool:
        """Delete a task; ``False`` if there was none."""
        return await self._runtime.store.delete_task(task_id)

    async def due(self, at: float | None = None, *, horizon_s: float = 0.0) -> builtins.list[Task]:
        """Scheduled tasks with a worker, due by ``at`` (default now) + ``horizon_s``."""
        limit = (now() if at is None else at) + horizon_s
        found = await self._runtime.store.get_due_tasks(
            agent_id=self._runtime.agent_id, before=limit
        )
        return [t for t in found if t.worker and t.status is TaskStatus.SCHEDULED]

    async def run_due(self, at: float | None = None) -> int:
        """Run every due task (each due run once, across processes); how many ran here."""
        tasks = await self.due(at)
        if not tasks:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(task: Task) -> bool:
            async with limit:
                return await self.run(task.id, task.due_at or 0.0, task=task)

        ran = await asyncio.gather(*(one(t) for t in tasks))
        return sum(ran)

    async def run(self, task_id: str, due_at: float, *, task: Task | None = None) -> bool:
        """Claim the run of task ``task_id`` due at ``due_at`` and execute it; ``False``
        if another process claimed it, or the task changed or is gone."""
        runtime = self._runtime
        store = runtime.store
        if task is None:
            task = await self.get(task_id)
        if task is None or task.due_at != due_at or task.status is not TaskStatus.SCHEDULED:
            return False
        claim = f"taskrun:{runtime.agent_id}:{task.id}:{due_at!r}"
        if not await store.add_cache(claim, {"at": now()}, ttl_s=RECORD_TTL_S):
            return False
        started = now()
        error: str | None = None
        try:
            worker = runtime.host.task_workers.create(task.worker or "")
            await worker.execute(runtime, task)
        except UnknownNameError as exc:
            error = str(exc)
        except Exception as exc:
            logger.warning("Task %s (%s) failed", task.name, task.id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        current = await self.get(task.id)
        if current is None or current.due_at != due_at:
            return True  # cancelled or rescheduled while it ran: leave it be
        await store.upsert_task(self._after_run(current, started, error))
        return True

    def _after_run(self, task: Task, started: float, error: str | None) -> Task:
        update: dict[str, Any] = {"last_run_at": started}
        if error is not None:
            attempts = task.attempts + 1
            update.update(attempts=attempts, last_error=error)
            if attempts >= task.max_attempts:
                update.update(status=TaskStatus.FAILED, due_at=None)
                logger.error("Task %s failed %d times; marked failed", task.name, attempts)
            else:
                update.update(due_at=now() + task.backoff_s * 2 ** (attempts - 1))
            return task.model_copy(update=update)
        update.update(runs=task.runs + 1, attempts=0, last_error=None)
        due = task.due_at or started
        if task.interval_s is not None:
            later = due + task.interval_s
            current = now()
            if later <= current:  # skip runs missed while nothing ran
                later += task.interval_s * ((current - later) // task.interval_s + 1)
            update.update(due_at=later)
        elif task.cron is not None:
            update.update(due_at=self.next_run(task, max(due, now())))
        else:
            update.update(status=TaskStatus.DONE, due_at=None)
        return task.model_copy(update=update)


async def run_scheduler(
    runtimes: Sequence[AgentRuntime],
    stop: asyncio.Event,
    *,
    tick_s: float = 0.2,
    sweep_s: float = 5.0,
) -> None:
    """The embedded scheduler: every ``tick_s`` seconds, run the agents' due tasks;
    every ``sweep_s`` seconds, apply expired approvals' defaults and finish decided
    approvals a crash cut off. Returns when ``stop`` is set."""
    swept = 0.0
    while not stop.is_set():
        for runtime in runtimes:
            try:
                await runtime.tasks.run_due()
                if time.monotonic() - swept >= sweep_s:
                    await runtime.approvals.recover()
            except Exception:  # a store briefly away: the next tick tries again
                logger.exception("%s: the scheduler's tick failed", runtime.character.name)
        if time.monotonic() - swept >= sweep_s:
            swept = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick_s)
