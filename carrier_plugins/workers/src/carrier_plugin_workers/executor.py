"""``WorkersExecutor``: enqueue a message for ``carrier worker`` processes, then wait.

``submit`` = :meth:`~WorkersExecutor.enqueue` + :meth:`~WorkersExecutor.wait`.
The message's id is fixed before it is enqueued, so a worker that retries it
finds it already stored and its response id (``{message_id}-{agent_id}``) taken:
one response, whoever finishes. One task per executor polls PostgreSQL for every
job being waited on at once, instead of one query per waiting client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carrier.emitting import trace_context
from carrier.errors import StoreError
from carrier.protocols import Executor
from carrier.types import Reply
from carrier_plugin_workers.queue import (
    QUEUE_ERRORS,
    TASK,
    build_app,
    ensure_schema,
    is_connection_error,
    queue_error,
    queue_for,
    queue_target,
    room_lock,
)
from carrier_plugin_workers.retries import checking_jobs, enqueueing, reading_answer

if TYPE_CHECKING:
    import procrastinate
    from carrier_plugin_sql.pg_url import PostgresTarget
    from procrastinate.jobs import Job

    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = ["Enqueued", "WorkersExecutor"]

logger = logging.getLogger("carrier.workers")

_FINAL = ("succeeded", "failed", "cancelled", "aborted")
#: Finished jobs among ``ids``; a job that is gone succeeded (workers delete
#: succeeded jobs unless ``CARRIER_WORKERS_KEEP_JOBS`` is set).
_FINISHED_JOBS = (
    "SELECT wanted.id, coalesce(jobs.status::text, 'succeeded') AS status "
    "FROM unnest(%(ids)s::bigint[]) AS wanted(id) "
    "LEFT JOIN procrastinate_jobs AS jobs ON jobs.id = wanted.id "
    "WHERE jobs.id IS NULL OR jobs.status = ANY(%(final)s::procrastinate_job_status[])"
)


_DONE = "succeeded"


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A message handed to the queue: its id (as stored) and its job's id."""

    message_id: str
    room_id: str
    job_id: int


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A job someone waits on: its future gets the job's final status and, when it
    succeeded, its message's reply if the poller could read it."""

    runtime: AgentRuntime
    enqueued: Enqueued
    future: asyncio.Future[tuple[str, Reply | None]]


class WorkersExecutor(Executor):
    """Runs messages on ``carrier worker`` processes through a procrastinate queue.

    ``on_text`` is not called: the text is generated in another process.
    """

    name = "workers"

    def __init__(self, settings: WorkersSettings) -> None:
        self.settings = settings
        self._app: procrastinate.App | None = None
        self._target: PostgresTarget | None = None
        self._opening = asyncio.Lock()
        self._waiting: dict[int, _Waiting] = {}
        self._poller: asyncio.Task[None] | None = None
        self._deferring: list[tuple[list[Job], asyncio.Future[list[int]]]] = []
        self._deferrer: asyncio.Task[None] | None = None

    async def _open(self, runtime: AgentRuntime) -> procrastinate.App:
        async with self._opening:
            if self._app is None:
                target = queue_target(self.settings, runtime.settings)
                await ensure_schema(target)
                app = build_app(target, self.settings)
                try:
                    await app.open_async()
                except QUEUE_ERRORS as exc:
                    raise queue_error(target, "opening the queue", exc) from exc
                self._app, self._target = app, target
            return self._app

    async def enqueue(self, runtime: AgentRuntime, incoming: IncomingMessage) -> Enqueued:
        """Put the message on its agent's queue, locked to its room; return at once.

        Raises:
            InputError: The message is too long (nothing is enqueued).
            StoreError: PostgreSQL cannot be reached (nothing is enqueued).
        """
        return (await self.enqueue_many(runtime, [incoming]))[0]

    async def enqueue_many(
        self, runtime: AgentRuntime, messages: Sequence[IncomingMessage]
    ) -> list[Enqueued]:
        """Enqueue ``messages`` in one statement; a room's messages keep their order.
        Callers enqueueing at the same time share a statement: while one is written,
        the others' jobs gather, and go in the next.

        Raises:
            InputError: A message is too long (none is enqueued).
            StoreError: PostgreSQL cannot be reached (none is enqueued).
        """
        from procrastinate.jobs import Job

        stored = [runtime.receive(incoming) for incoming in messages]  # sizes, ids
        shipped = []
        for incoming, message in zip(messages, stored, strict=True):
            with_id = incoming.model_copy(update={"message_id": message.id})
            # tracing headers (carrier_trace_context), so one message is one trace
            headers = trace_context(runtime, with_id, self.name)
            shipped.append(with_id.model_copy(update={"trace_context": headers}))
        await self._open(runtime)
        queue = queue_for(runtime.agent_id)
        jobs = [
            Job(
                queue=queue,
                lock=room_lock(runtime.agent_id, message.room_id),
                queueing_lock=None,
                task_name=TASK,
                task_kwargs={
                    "agent_id": runtime.agent_id,
                    "message": incoming.model_dump(mode="json"),
                },
            )
            for incoming, message in zip(shipped, stored, strict=True)
        ]
        deferred = await self._defer(jobs)
        return [
            Enqueued(message_id=message.id, room_id=message.room_id, job_id=job_id)
            for message, job_id in zip(stored, deferred, strict=True)
        ]

    async def _defer(self, jobs: list[Job]) -> list[int]:
        """The ids of ``jobs`` once deferred, with every other caller's jobs gathered
        while the previous statement was written (a group commit: one statement a
        round trip, whatever the number of callers)."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._deferring.append((jobs, future))
        if self._deferrer is None or self._deferrer.done():
            self._deferrer = asyncio.create_task(self._defer_gathered(), name="carrier-defer")
        return await future

    async def _defer_gathered(self) -> None:
        while self._deferring:
            batch, self._deferring = self._deferring, []
            try:
                await self._defer_batch(batch)
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise

    async def _defer_batch(self, batch: list[tuple[list[Job], asyncio.Future[list[int]]]]) -> None:
        """Defer every caller's jobs in one statement. If PostgreSQL refuses it (not a
        lost server), each caller's go alone, so that one caller's bad job fails only
        that caller."""
        app, target = self._app, self._target
        assert app is not None
        assert target is not None
        jobs = [job for own, _ in batch for job in own]
        try:
            async for attempt in enqueueing(self.settings.pool_size):
                with attempt:
                    deferred = await app.job_manager.batch_defer_jobs_async(jobs)
        except QUEUE_ERRORS as exc:
            if len(batch) > 1 and not is_connection_error(exc):
                for caller in batch:
                    await self._defer_batch([caller])
                return
            for own, future in batch:
                error = queue_error(target, f"enqueueing {len(own)} message(s)", exc)
                error.__cause__ = exc
                if not future.done():
                    future.set_exception(error)
            return
        except Exception as exc:  # a bug: every caller hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        ids = iter([int(job.id or 0) for job in deferred])
        for own, future in batch:
            taken = [next(ids) for _ in own]
            if not future.done():
                future.set_result(taken)

    async def wait(self, runtime: AgentRuntime, enqueued: Enqueued) -> Reply:
        """Wait until a worker has finished the message; its reply, read from the store.

        A message no worker finished in ``CARRIER_WORKERS_REPLY_TIMEOUT_S`` stays
        queued; the reply says so in ``error``.
        """
        waiting = self._waiting.get(enqueued.job_id)
        if waiting is None:
            future = asyncio.get_running_loop().create_future()
            waiting = self._waiting[enqueued.job_id] = _Waiting(runtime, enqueued, future)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="carrier-workers-poller")
        timeout = self.settings.reply_timeout_s
        try:
            status, read = await asyncio.wait_for(asyncio.shield(waiting.future), timeout)
        except TimeoutError:
            self._waiting.pop(enqueued.job_id, None)
            return await self._reply(
                runtime,
                enqueued,
                f"No worker finished message {enqueued.message_id} within {timeout:g} s "
                f"(CARRIER_WORKERS_REPLY_TIMEOUT_S); it stays queued and will be answered "
                f"when a worker takes it. Is 'carrier worker' running?",
            )
        if status == "succeeded":
            return await self._reply(runtime, enqueued, None, read=read)
        return await self._reply(
            runtime,
            enqueued,
            f"The workers gave up on message {enqueued.message_id} (job {enqueued.job_id} "
            f"{status}); it stays stored unanswered. The workers' log says why.",
        )

    async def _reply(
        self,
        runtime: AgentRuntime,
        enqueued: Enqueued,
        error: str | None,
        *,
        read: Reply | None = None,
    ) -> Reply:
        """The stored reply (``read`` if the poller read it already), with ``error``."""
        reply = read
        if reply is None:
            reading = reading_answer(enqueued.message_id)
            reply = await reading(runtime.stored_reply, enqueued.message_id)
        if reply is None:
            from carrier.types import Memory

            message = Memory(
                id=enqueued.message_id,
                agent_id=runtime.agent_id,
                entity_id=runtime.agent_id,
                room_id=enqueued.room_id,
            )
            return Reply(message=message, error=error or "The message was not stored.")
        if error is None and not reply.responses and not reply.ignored:
            error = f"Message {enqueued.message_id} was handled but not answered."
        return reply.model_copy(update={"error": error}) if error else reply

    async def _poll(self) -> None:
        """Resolve the futures of finished jobs, in one query per tick for all of them,
        with the replies of those that succeeded read in one more (per agent).

        A loop, not a retry: it ticks while anyone waits. Its query is retried by
        :func:`~carrier_plugin_workers.retries.checking_jobs`, whatever fails; a failed
        read of the replies leaves each waiter to read its own (with its retries).
        """
        poll_s = self.settings.reply_poll_s
        checking = checking_jobs(poll_s, waited_on=lambda: bool(self._waiting))  # one caller
        while self._waiting:
            await asyncio.sleep(poll_s)
            rows: list[dict[str, Any]] = await checking(self._finished_jobs)
            finished = [
                (waiting, str(row["status"]))
                for row in rows
                if (waiting := self._waiting.pop(row["id"], None)) is not None
            ]
            replies = await self._read_replies([w for w, status in finished if status == _DONE])
            for waiting, status in finished:
                if not waiting.future.done():
                    read = replies.get(waiting.enqueued.message_id)
                    waiting.future.set_result((status, read))

    @staticmethod
    async def _read_replies(finished: list[_Waiting]) -> dict[str, Reply | None]:
        """The replies of the messages of ``finished`` jobs, one read per agent; those
        of an agent whose read failed are left out (their waiters read them)."""
        by_runtime: dict[int, list[_Waiting]] = {}
        for waiting in finished:
            by_runtime.setdefault(id(waiting.runtime), []).append(waiting)
        replies: dict[str, Reply | None] = {}
        for group in by_runtime.values():
            ids = [w.enqueued.message_id for w in group]
            try:
                replies |= await group[0].runtime.stored_replies(ids)
            except StoreError as exc:
                logger.info("Reading %d finished messages' replies failed: %s", len(ids), exc)
            except Exception:  # a bug must not stop the poller: each waiter reads its own
                logger.exception("Reading %d finished messages' replies failed", len(ids))
        return replies

    async def _finished_jobs(self) -> list[dict[str, Any]]:
        app = self._app
        assert app is not None
        rows: list[dict[str, Any]] = await app.connector.execute_query_all_async(
            _FINISHED_JOBS, ids=list(self._waiting), final=list(_FINAL)
        )
        return rows

    async def submit(
        self,
        runtime: AgentRuntime,
        incoming: IncomingMessage,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Reply:
        return await self.wait(runtime, await self.enqueue(runtime, incoming))

    async def aclose(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        deferrer, self._deferrer = self._deferrer, None
        if deferrer is not None:
            deferrer.cancel()
            await asyncio.gather(deferrer, return_exceptions=True)
        for _, future in self._deferring:
            future.cancel()
        self._deferring.clear()
        for waiting in self._waiting.values():
            waiting.future.cancel()
        self._waiting.clear()
        app, self._app = self._app, None
        if app is not None:
            await app.close_async()
