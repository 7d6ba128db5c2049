"""``run_worker``: take message jobs from the queue and handle them, until stopped;
defer and run the agents' scheduled task runs too (:mod:`carrier_plugin_workers.tasks`).

A worker hosts one runtime per character, shares one store between them and
listens to their agents' queues. It survives PostgreSQL going away by
reconnecting with backoff. While running it also sweeps for *stalled* jobs,
those of a worker that stopped sending heartbeats (killed, or cut off), and
puts them back on the queue, where they keep their place in their room's order;
one worker sweeps at a time (an advisory lock), so a job is never requeued
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import procrastinate
import procrastinate.worker
import psycopg

from carrier.errors import CarrierError, InputError
from carrier.types import IncomingMessage, Reply
from carrier_plugin_workers.queue import (
    QUEUE_ERRORS,
    TASK,
    build_app,
    ensure_schema,
    is_connection_error,
    queue_for,
    queue_target,
    was_pruned,
)
from carrier_plugin_workers.retries import awaiting_run, reconnecting, recording_outcome
from carrier_plugin_workers.tasks import plan_tasks, register_task_runner

if TYPE_CHECKING:
    from carrier_plugin_sql.pg_url import PostgresTarget

    from carrier.character import Character
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = ["MessageNotAnsweredError", "run_worker"]

logger = logging.getLogger("carrier.workers")

#: Seconds before reconnecting after a session was lost (then ``reconnecting`` backs off).
_AFTER_LOSS_S = 0.5
_SWEEP_ERRORS: tuple[type[BaseException], ...] = (
    *QUEUE_ERRORS,
    procrastinate.exceptions.ProcrastinateException,
)
_SWEEP_LOCK = int.from_bytes(hashlib.blake2b(b"carrier-workers-sweep", digest_size=7).digest())


class MessageNotAnsweredError(CarrierError):
    """A worker stored a message but could not answer it; the job is retried."""


class _SessionLost(Exception):  # noqa: N818 (control flow, not an error to report)
    """A worker that took jobs lost its connection; ``run_worker`` starts a new session."""


class _DurableWorker(procrastinate.worker.Worker):
    """procrastinate's worker, but recording a job's outcome survives a PostgreSQL
    restart: procrastinate gives up at the first error, leaving the job ``doing``
    under a worker that still sends heartbeats, so the sweep never frees it and its
    room waits forever. Here the outcome is retried (``retries.recording_outcome``:
    up to 60 s); a worker that still cannot reach the server is restarted by
    :func:`run_worker`, and its jobs are swept. (Overrides a private method:
    procrastinate is pinned to 3.10.x.)"""

    async def _persist_job_status(self, *args: Any, **kwargs: Any) -> None:
        await recording_outcome()(super()._persist_job_status, *args, **kwargs)


class _Backoff(procrastinate.BaseRetryStrategy):
    """Retry a job ``max_attempts - 1`` times, waiting ``first_s``, then twice as long each time."""

    def __init__(self, max_attempts: int, first_s: float) -> None:
        self.max_attempts, self.first_s = max_attempts, first_s

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if job.attempts + 1 >= self.max_attempts:
            return None
        return procrastinate.RetryDecision(retry_in={"seconds": self.first_s * 2**job.attempts})


def _register_task(
    app: procrastinate.App, runtimes: Mapping[str, AgentRuntime], settings: WorkersSettings
) -> None:
    retry = _Backoff(settings.max_attempts, settings.retry_wait_s)

    @app.task(name=TASK, retry=retry, pass_context=False)
    async def handle_message(agent_id: str, message: dict[str, Any]) -> None:
        runtime = runtimes.get(agent_id)
        if runtime is None:  # the queue names the agent, so this is a misrouted job
            raise CarrierError(f"This worker does not host agent {agent_id}.")
        incoming = IncomingMessage.model_validate(message)
        # another process may hold the message's run (a recovery at start, a job requeued
        # from a worker that was only slow): wait for its answer, or take over its lease
        awaiting = awaiting_run(str(incoming.message_id), lease_ttl_s=runtime.settings.lease_ttl_s)
        try:
            reply: Reply = await awaiting(runtime.handle_message, incoming)
        except InputError as exc:  # retrying cannot help
            logger.warning("Message %s refused: %s", incoming.message_id, exc)
            return
        if reply.in_progress:
            raise MessageNotAnsweredError(
                f"Message {incoming.message_id} is still being handled by another process."
            )
        if reply.error:
            raise MessageNotAnsweredError(f"Message {incoming.message_id}: {reply.error}")


async def _sweep_stalled(
    app: procrastinate.App, target: PostgresTarget, settings: WorkersSettings
) -> None:
    """Requeue the jobs of workers silent for ``stalled_after_s``, every heartbeat."""
    while True:
        await asyncio.sleep(settings.heartbeat_s)
        try:
            async with await psycopg.AsyncConnection.connect(target.dsn, autocommit=True) as conn:
                cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_SWEEP_LOCK,))
                row = await cursor.fetchone()
                if not (row and row[0]):
                    continue
                jobs = await app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=settings.stalled_after_s
                )
                for job in jobs:
                    logger.warning(
                        "Requeueing job %s (lock %s): its worker stopped responding",
                        job.id,
                        job.lock,
                    )
                    await app.job_manager.retry_job(job)
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SWEEP_LOCK,))
        except _SWEEP_ERRORS as exc:
            logger.warning("Stalled-job sweep skipped: %s", exc)


async def run_worker(
    host: PluginHost,
    characters: Sequence[Character | str | Path | None] = (),
    *,
    settings: WorkersSettings | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Handle queued messages for ``characters`` until ``stop`` is set.

    Args:
        host: The plugin host.
        characters: Character files; none means ``CARRIER_CHARACTER`` or the default.
        settings: The ``workers`` settings; read from the environment if ``None``.
        stop: Set it to finish the messages in hand and return.
        on_ready: Called with a line describing the worker once it takes jobs.

    Returns:
        The exit status.
    """
    from carrier.runtime import open_agents

    settings = settings if settings is not None else host.settings.get("workers")
    stop = stop if stop is not None else asyncio.Event()
    target = queue_target(settings, host.carrier_settings)
    async with open_agents(host, characters) as agents:
        runtimes = {runtime.agent_id: runtime for runtime in agents}
        name = f"{socket.gethostname()}:{os.getpid()}"
        names = ", ".join(f"{r.character.name} ({r.agent_id})" for r in runtimes.values())
        ready = f"carrier worker {name}: {names}, {settings.concurrency} at once"
        # a loop of sessions, not a retry: each connects (retried by ``reconnecting``),
        # serves until stopped or cut off; a lost session starts the backoff afresh
        while not stop.is_set():
            try:
                await reconnecting(stop)(
                    _serve,
                    target,
                    settings,
                    runtimes,
                    name=name,
                    stop=stop,
                    on_ready=lambda: on_ready(ready) if on_ready is not None else None,
                )
            except _SessionLost as exc:
                logger.warning(
                    "Lost the queue's PostgreSQL (%s); reconnecting in %.1f s",
                    exc.__cause__ or exc,
                    _AFTER_LOSS_S,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _AFTER_LOSS_S)
    print("carrier worker: stopped", file=sys.stderr)
    return 0


async def _serve(
    target: PostgresTarget,
    settings: WorkersSettings,
    runtimes: Mapping[str, AgentRuntime],
    *,
    name: str,
    stop: asyncio.Event,
    on_ready: Callable[[], None],
) -> None:
    """One session: connect to the queue, take jobs until ``stop`` is set.

    Raises:
        QueueUnreachableError: The server cannot be reached (retried by ``reconnecting``).
        _SessionLost: The worker took jobs, then stopped: the connection was lost.
    """
    if stop.is_set():  # set while ``reconnecting`` waited
        return
    app = build_app(target, settings)
    _register_task(app, runtimes, settings)
    register_task_runner(app, runtimes, settings)
    await ensure_schema(target)
    async with app.open_async():
        sweeper = asyncio.create_task(_sweep_stalled(app, target, settings))
        planner = asyncio.create_task(plan_tasks(app, runtimes, settings))
        worker = asyncio.create_task(
            _DurableWorker(
                app=app,
                queues=[queue_for(agent_id) for agent_id in runtimes],
                name=name,
                concurrency=settings.concurrency,
                fetch_job_polling_interval=settings.poll_s,
                update_heartbeat_interval=settings.heartbeat_s,
                stalled_worker_timeout=settings.stalled_after_s,
                install_signal_handlers=False,
                delete_jobs="never" if settings.keep_jobs else "successful",
            ).run()  # type: ignore[no-untyped-call]
        )
        on_ready()
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            sweeper.cancel()
            planner.cancel()
            if not worker.done():
                worker.cancel()  # procrastinate finishes the jobs in hand first
            await asyncio.gather(worker, sweeper, planner, return_exceptions=True)
        if stop.is_set():
            return
        try:
            worker.result()  # raises what stopped the worker
        except QUEUE_ERRORS as exc:
            if is_connection_error(exc):
                raise _SessionLost(str(exc)) from exc
            if was_pruned(exc):  # a new session registers the worker again
                raise _SessionLost(  # noqa: B904 - the message says it all; __context__ stays
                    "another worker took this one for stalled while PostgreSQL was away "
                    "and removed it; its jobs were requeued"
                )
            raise
        raise _SessionLost("the worker stopped taking jobs")
