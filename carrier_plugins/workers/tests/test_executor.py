"""The ``workers`` executor and a worker in this process, on a real PostgreSQL:
order per room, one answer per message, retries, failures and timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import procrastinate
import pytest
from carrier_plugin_workers.executor import WorkersExecutor
from carrier_plugin_workers.queue import build_app, ensure_schema, queue_target

from carrier.errors import InputError, StoreError
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.types import IncomingMessage, Reply

if TYPE_CHECKING:
    from conftest import Script  # the fixture's class; conftest is not importable


async def _responses(runtime: AgentRuntime, message_id: str) -> int:
    count = 0
    while await runtime.store.get_memory(
        f"{message_id}-{runtime.agent_id}" + (f"-{count}" if count else "")
    ):
        count += 1
    return count


async def test_each_room_is_answered_in_order_and_once(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    await start_worker()
    script.delay_s = 0.01
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    messages = [
        IncomingMessage(text=f"r{room} m{n}", room_id=f"room-{room}", user_id="u")
        for room in range(4)
        for n in range(6)
    ]
    enqueued = await executor.enqueue_many(client, messages)
    replies = await asyncio.gather(*(executor.wait(client, e) for e in enqueued))
    assert [r.error for r in replies] == [None] * len(messages)
    assert [r.texts for r in replies] == [[f"re: {m.text}"] for m in messages]
    for room in range(4):
        in_room = [text for text in script.seen if text.startswith(f"r{room} ")]
        assert in_room == [f"r{room} m{n}" for n in range(6)]
    for e in enqueued:
        assert await _responses(client, e.message_id) == 1
    assert script.overlaps == 0


async def test_a_replayed_message_gets_its_first_answer_again(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    await start_worker()
    incoming = IncomingMessage(text="once", room_id="r", user_id="u", message_id="m-1")
    first = await client.handle(incoming)
    again = await client.handle(incoming)
    assert first.texts == again.texts == ["re: once"]
    assert script.seen == ["once"]
    assert await _responses(client, "m-1") == 1


async def test_a_failing_attempt_is_retried_and_answered_once(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    await start_worker()
    script.failures = 2  # CARRIER_WORKERS_MAX_ATTEMPTS=3
    reply = await client.handle(IncomingMessage(text="flaky", room_id="r", message_id="m-2"))
    assert reply.error is None
    assert reply.texts == ["re: flaky"]
    assert script.seen == ["flaky"] * 3
    assert await _responses(client, "m-2") == 1


async def test_a_message_no_attempt_answers_fails_cleanly_and_the_room_goes_on(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    await start_worker()
    script.always_fail = {"doomed"}
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    doomed, after = await executor.enqueue_many(
        client,
        [
            IncomingMessage(text="doomed", room_id="r", message_id="m-3"),
            IncomingMessage(text="after", room_id="r", message_id="m-4"),
        ],
    )
    failed = await executor.wait(client, doomed)
    assert failed.error is not None
    assert "gave up on message m-3" in failed.error
    assert failed.message.content.text == "doomed"  # stored, never lost
    unanswered = await client.store.unanswered_messages(agent_id=client.agent_id)
    assert [m.id for m in unanswered] == ["m-3"]
    assert (await executor.wait(client, after)).texts == ["re: after"]
    assert script.seen == ["doomed", "doomed", "doomed", "after"]


async def test_without_a_worker_the_client_times_out_and_the_message_waits(
    client: AgentRuntime,
    script: Script,
    start_worker: Callable[[], Awaitable[None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    monkeypatch.setattr(executor.settings, "reply_timeout_s", 0.5)
    reply = await client.handle(IncomingMessage(text="anyone?", room_id="r", message_id="m-5"))
    assert reply.error is not None
    assert "Is 'carrier worker' running?" in reply.error
    assert script.seen == []
    await start_worker()
    monkeypatch.setattr(executor.settings, "reply_timeout_s", 30)
    for _ in range(300):
        answered = await client.stored_reply("m-5")
        if answered is not None and answered.texts:
            break
        await asyncio.sleep(0.05)
    assert answered is not None
    assert answered.texts == ["re: anyone?"]


async def test_an_oversized_message_is_refused_before_it_is_queued(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    await start_worker()
    limit = client.settings.max_message_chars
    with pytest.raises(InputError, match="CARRIER_MAX_MESSAGE_CHARS"):
        await client.handle(IncomingMessage(text="x" * (limit + 1), room_id="r"))
    assert (await client.handle(IncomingMessage(text="short", room_id="r"))).texts == ["re: short"]
    assert script.seen == ["short"]


async def test_queue_calls_run_in_autocommit(host: PluginHost) -> None:
    # each procrastinate call is one statement: no BEGIN and COMMIT round trips around it
    settings = host.settings.get("workers")
    target = queue_target(settings, host.carrier_settings)
    await ensure_schema(target)
    app = build_app(target, settings)
    assert isinstance(app.connector, procrastinate.PsycopgConnector)
    async with app.open_async(), app.connector.pool.connection() as conn:
        assert conn.autocommit


class _Counted:
    """Calls through to ``method``, counting the calls."""

    def __init__(self, method: Callable[..., Awaitable[object]]) -> None:
        self.method, self.calls = method, 0

    async def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return await self.method(*args, **kwargs)


async def test_callers_enqueueing_at_once_share_one_statement_and_read_their_replies_at_once(
    client: AgentRuntime,
    script: Script,
    start_worker: Callable[[], Awaitable[None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    await executor.enqueue(client, IncomingMessage(text="open", room_id="warm", user_id="ada"))
    app = executor._app
    assert app is not None
    defers = _Counted(app.job_manager.batch_defer_jobs_async)
    monkeypatch.setattr(app.job_manager, "batch_defer_jobs_async", defers)
    messages = [
        IncomingMessage(text=f"{user} {n}", room_id=f"{user}-{n % 2}", user_id=user)
        for user in ("ada", "bob")
        for n in range(4)
    ]
    enqueued = await asyncio.gather(*(executor.enqueue(client, m) for m in messages))
    assert defers.calls == 1  # eight callers, one statement
    assert len({e.job_id for e in enqueued}) == len(messages)
    await start_worker()
    for e in enqueued:  # every job done before anyone waits
        for _ in range(200):
            done = await client.stored_reply(e.message_id)
            if done is not None and done.texts:
                break
            await asyncio.sleep(0.05)
    reads = _Counted(client.store.get_memories_by_id)
    monkeypatch.setattr(client.store, "get_memories_by_id", reads)
    replies = await asyncio.gather(*(executor.wait(client, e) for e in enqueued))
    assert reads.calls == 1  # eight replies, one read
    for message, reply in zip(messages, replies, strict=True):
        assert reply.error is None
        assert reply.message.entity_id == message.user_id
        assert reply.texts == [f"re: {message.text}"]  # its own answer, not another's


async def test_a_message_postgres_refuses_fails_alone_when_enqueued_with_others(
    client: AgentRuntime, script: Script, start_worker: Callable[[], Awaitable[None]]
) -> None:
    """PostgreSQL refuses a NUL character in a job's arguments (here in the metadata a
    client set: ``receive`` refuses one in what a sender typed): the statement the
    callers shared fails, then each caller's jobs go alone, so only Ada's fails."""
    await start_worker()
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    await client.handle(IncomingMessage(text="open", room_id="warm", user_id="bob"))
    bad = IncomingMessage(
        text="a b", room_id="ada-room", user_id="ada", metadata={"chat": "a\x00b"}
    )
    good = IncomingMessage(text="hello", room_id="bob-room", user_id="bob")
    refused, answered = await asyncio.gather(
        client.handle(bad), client.handle(good), return_exceptions=True
    )
    assert isinstance(refused, StoreError)
    assert "enqueueing 1 message(s)" in str(refused)
    assert isinstance(answered, Reply)
    assert answered.texts == ["re: hello"]
    assert "a b" not in script.seen
