"""``WorkersExecutor``: enqueue a message for ``carrier worker`` processes, then wait.

``submit`` = :meth:`~WorkersExecutor.enqueue` + :meth:`~WorkersExecutor.wait`.
The message's id is fixed before it is enqueued, so a worker that retries it
finds it already stored and its response id (``{message_id}-{agent_id}``) taken:
one response, whoever finishes. One task per executor polls PostgreSQL for every
job being waited on at once, instead of one query per waiting client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carrier.emitting import trace_context
from carrier.protocols import Executor
from carrier.types import Reply
from carrier_plugin_workers.queue import (
    QUEUE_ERRORS,
    TASK,
    build_app,
    ensure_schema,
    queue_error,
    queue_for,
    queue_target,
    room_lock,
)
from carrier_plugin_workers.retries import checking_jobs, enqueueing, reading_answer

if TYPE_CHECKING:
    import procrastinate
    from carrier_plugin_sql.pg_url import PostgresTarget

    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = ["Enqueued", "WorkersExecutor"]

_FINAL = ("succeeded", "failed", "cancelled", "aborted")
#: Finished jobs among ``ids``; a job that is gone succeeded (workers delete
#: succeeded jobs unless ``CARRIER_WORKERS_KEEP_JOBS`` is set).
_FINISHED_JOBS = (
    "SELECT wanted.id, coalesce(jobs.status::text, 'succeeded') AS status "
    "FROM unnest(%(ids)s::bigint[]) AS wanted(id) "
    "LEFT JOIN procrastinate_jobs AS jobs ON jobs.id = wanted.id "
    "WHERE jobs.id IS NULL OR jobs.status = ANY(%(final)s::procrastinate_job_status[])"
)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A message handed to the queue: its id (as stored) and its job's id."""

    message_id: str
    room_id: str
    job_id: int


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
        self._waiting: dict[int, asyncio.Future[str]] = {}
        self._poller: asyncio.Task[None] | None = None

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
        app = await self._open(runtime)
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
        try:
            async for attempt in enqueueing(self.settings.pool_size):
                with attempt:
                    deferred = await app.job_manager.batch_defer_jobs_async(jobs)
        except QUEUE_ERRORS as exc:
            assert self._target is not None
            raise queue_error(self._target, f"enqueueing {len(jobs)} message(s)", exc) from exc
        return [
            Enqueued(message_id=message.id, room_id=message.room_id, job_id=int(job.id or 0))
            for message, job in zip(stored, deferred, strict=True)
        ]

    async def wait(self, runtime: AgentRuntime, enqueued: Enqueued) -> Reply:
        """Wait until a worker has finished the message; its reply, read from the store.

        A message no worker finished in ``CARRIER_WORKERS_REPLY_TIMEOUT_S`` stays
        queued; the reply says so in ``error``.
        """
        loop = asyncio.get_running_loop()
        future = self._waiting.get(enqueued.job_id)
        if future is None:
            future = self._waiting[enqueued.job_id] = loop.create_future()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="carrier-workers-poller")
        timeout = self.settings.reply_timeout_s
        try:
            status = await asyncio.wait_for(asyncio.shield(future), timeout)
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
            return await self._reply(runtime, enqueued, None)
        return await self._reply(
            runtime,
            enqueued,
            f"The workers gave up on message {enqueued.message_id} (job {enqueued.job_id} "
            f"{status}); it stays stored unanswered. The workers' log says why.",
        )

    async def _reply(self, runtime: AgentRuntime, enqueued: Enqueued, error: str | None) -> Reply:
        reading = reading_answer(enqueued.message_id)
        reply: Reply | None = await reading(runtime.stored_reply, enqueued.message_id)
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
        """Resolve the futures of finished jobs, in one query per tick for all of them.

        A loop, not a retry: it ticks while anyone waits. Its query is retried by
        :func:`~carrier_plugin_workers.retries.checking_jobs`, whatever fails.
        """
        poll_s = self.settings.reply_poll_s
        checking = checking_jobs(poll_s, waited_on=lambda: bool(self._waiting))  # one caller
        while self._waiting:
            await asyncio.sleep(poll_s)
            rows: list[dict[str, Any]] = await checking(self._finished_jobs)
            for row in rows:
                future = self._waiting.pop(row["id"], None)
                if future is not None and not future.done():
                    future.set_result(str(row["status"]))

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
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        app, self._app = self._app, None
        if app is not None:
            await app.close_async()
