"""``run_worker``: take message jobs from the queue and handle them, until stopped.

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
from carrier.types import IncomingMessage
from carrier_plugin_workers.queue import (
    QUEUE_ERRORS,
    TASK,
    QueueUnreachableError,
    build_app,
    ensure_schema,
    is_connection_error,
    queue_for,
    queue_target,
)

if TYPE_CHECKING:
    from carrier_plugin_sql.pg_url import PostgresTarget

    from carrier.character import Character
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = ["MessageNotAnsweredError", "run_worker"]

logger = logging.getLogger("carrier.workers")

#: How long a worker keeps trying to record a job's outcome.
_PERSIST_FOR_S = 60.0
_SWEEP_ERRORS: tuple[type[BaseException], ...] = (
    *QUEUE_ERRORS,
    procrastinate.exceptions.ProcrastinateException,
)
_SWEEP_LOCK = int.from_bytes(hashlib.blake2b(b"carrier-workers-sweep", digest_size=7).digest())


class MessageNotAnsweredError(CarrierError):
    """A worker stored a message but could not answer it; the job is retried."""


class _DurableWorker(procrastinate.worker.Worker):
    """procrastinate's worker, but recording a job's outcome survives a PostgreSQL
    restart: procrastinate gives up at the first error, leaving the job ``doing``
    under a worker that still sends heartbeats, so the sweep never frees it and its
    room waits forever. Here the outcome is retried with backoff for up to
    ``_PERSIST_FOR_S``; a worker that still cannot reach the server is restarted by
    :func:`run_worker`, and its jobs are swept. (Overrides a private method:
    procrastinate is pinned to 3.10.x.)"""

    async def _persist_job_status(self, *args: Any, **kwargs: Any) -> None:
        delay, deadline = 0.1, asyncio.get_running_loop().time() + _PERSIST_FOR_S
        while True:
            try:
                await super()._persist_job_status(*args, **kwargs)
                return
            except QUEUE_ERRORS as exc:
                if not is_connection_error(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
                logger.warning("Recording a job's outcome failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


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
        try:
            reply = await runtime.handle_message(incoming)
        except InputError as exc:  # retrying cannot help
            logger.warning("Message %s refused: %s", incoming.message_id, exc)
            return
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
        delay = 0.5
        while not stop.is_set():
            app = build_app(target, settings)
            _register_task(app, runtimes, settings)
            try:
                await ensure_schema(target)
                async with app.open_async():
                    sweeper = asyncio.create_task(_sweep_stalled(app, target, settings))
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
                    if on_ready is not None:
                        on_ready(f"carrier worker {name}: {names}, {settings.concurrency} at once")
                    delay = 0.5
                    stopping = asyncio.create_task(stop.wait())
                    try:
                        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopping.cancel()
                        sweeper.cancel()
                        if not worker.done():
                            worker.cancel()  # procrastinate finishes the jobs in hand first
                        await asyncio.gather(worker, sweeper, return_exceptions=True)
                    if not stop.is_set():
                        worker.result()  # raises what stopped the worker
            except QUEUE_ERRORS as exc:
                if not is_connection_error(exc):
                    raise
                logger.warning(
                    "Lost the queue's PostgreSQL (%s); reconnecting in %.1f s", exc, delay
                )
            except QueueUnreachableError as exc:
                logger.warning("%s Retrying in %.1f s", exc, delay)
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 10.0)
    print("carrier worker: stopped", file=sys.stderr)
    return 0
