"""The workers' tenacity policies: what each retries, how it logs each retry, when it
gives up and what it raises or returns then (without a server); then ``run_worker``'s
reconnects, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time

import carrier_plugin_workers.worker
import psycopg
import psycopg_pool
import pytest
from carrier_plugin_workers.queue import QueueUnreachableError
from carrier_plugin_workers.retries import (
    READ_ATTEMPTS,
    awaiting_run,
    checking_jobs,
    enqueueing,
    reading_answer,
    reconnecting,
    recording_outcome,
)
from carrier_plugin_workers.worker import run_worker
from tenacity import wait_none

from carrier.character import Character
from carrier.errors import StoreError
from carrier.host import PluginHost
from carrier.types import Memory, Reply


class Calls:
    """An async callable that raises (or returns) the next of ``outcomes``."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.count = 0

    async def __call__(self) -> object:
        self.count += 1
        outcome = self.outcomes[min(self.count, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _reply(*, in_progress: bool) -> Reply:
    message = Memory(id="m", agent_id="a", entity_id="u", room_id="r")
    return Reply(message=message, in_progress=in_progress)


async def test_reading_the_answer_gives_up_with_the_store_error_after_20_tries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Calls(StoreError("down"))
    with pytest.raises(StoreError, match="down"):
        await reading_answer("m-1").copy(wait=wait_none())(calls)
    assert calls.count == READ_ATTEMPTS
    retries = [r for r in caplog.records if "Reading the answer to m-1 failed" in r.message]
    assert len(retries) == READ_ATTEMPTS - 1


async def test_reading_the_answer_returns_once_the_store_is_back() -> None:
    calls = Calls(StoreError("restarting"), StoreError("restarting"), None)
    assert await reading_answer("m").copy(wait=wait_none())(calls) is None
    assert calls.count == 3


async def test_recording_an_outcome_retries_only_a_lost_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = Calls(psycopg.OperationalError("server closed the connection"), "done")
    assert await recording_outcome().copy(wait=wait_none())(lost) == "done"
    assert "Recording a job's outcome failed" in caplog.text
    broken = Calls(psycopg.errors.UndefinedTable("no procrastinate_jobs"))
    with pytest.raises(psycopg.errors.UndefinedTable):
        await recording_outcome()(broken)
    assert broken.count == 1


async def test_reconnecting_backs_off_and_stop_ends_the_wait_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls = Calls(QueueUnreachableError("Cannot reach the job queue's PostgreSQL."))
    asyncio.get_running_loop().call_later(1.0, stop.set)
    started = time.monotonic()
    assert await reconnecting(stop)(calls) is None  # stopped: nothing raised
    assert time.monotonic() - started < 3  # waits of 0.5-1 s, then 1-1.5 s: cut short
    assert calls.count >= 2
    assert "Cannot reach the job queue's PostgreSQL. Retrying in" in caplog.text
    with pytest.raises(ValueError, match="a bug"):  # not a connection error: at once
        await reconnecting(asyncio.Event())(Calls(ValueError("a bug")))


async def test_checking_jobs_outlives_any_error_while_someone_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waiting = {1}
    calls = Calls(RuntimeError("pool timeout"), psycopg.OperationalError("gone"), [{"id": 1}])
    policy = checking_jobs(0.02, waited_on=lambda: bool(waiting)).copy(wait=wait_none())
    assert await policy(calls) == [{"id": 1}]
    levels = [r.levelno for r in caplog.records if "Cannot check finished jobs" in r.message]
    assert levels == [logging.ERROR, logging.WARNING]  # a bug is louder than a restart
    waiting.clear()  # nobody waits any more: the next failure ends it
    assert await policy(Calls(RuntimeError("still failing"))) == []


async def test_awaiting_another_run_returns_its_outcome_or_the_last_in_progress() -> None:
    done = _reply(in_progress=False)
    calls = Calls(_reply(in_progress=True), _reply(in_progress=True), done)
    assert await awaiting_run("m", lease_ttl_s=60).copy(wait=wait_none())(calls) is done
    assert calls.count == 3
    still: Reply = await awaiting_run("m", lease_ttl_s=0.05)(Calls(_reply(in_progress=True)))
    assert still.in_progress  # the caller hands the job back to the queue
    with pytest.raises(StoreError):  # failures are the run's own to report
        await awaiting_run("m", lease_ttl_s=60)(Calls(StoreError("down")))


@pytest.mark.usefixtures("script")  # the character's model
async def test_a_worker_retries_an_unreachable_queue_until_stopped(
    host: PluginHost,
    character: Character,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = "postgresql://u:secret@127.0.0.1:1/q"
    settings = host.settings.get("workers").model_copy(update={"database_url": unreachable})
    stop = asyncio.Event()
    stopped_at: list[float] = []

    class StopAfterTwoRetries(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Retrying in" in record.getMessage() and len(stopped_at) < 2:
                stopped_at.append(time.monotonic())
                if len(stopped_at) == 2:
                    stop.set()

    handler = StopAfterTwoRetries()
    logging.getLogger("carrier.workers").addHandler(handler)
    ready: list[str] = []
    try:
        code = await asyncio.wait_for(
            run_worker(host, [character], settings=settings, stop=stop, on_ready=ready.append),
            20,
        )
    finally:
        logging.getLogger("carrier.workers").removeHandler(handler)
    assert code == 0
    assert time.monotonic() - stopped_at[-1] < 1  # stop cut the backoff's wait short
    assert ready == []  # never connected
    retries = [r.message for r in caplog.records if "Retrying in" in r.message]
    assert "Cannot reach the job queue's PostgreSQL at 127.0.0.1:1" in retries[0]
    assert "secret" not in caplog.text


@pytest.mark.usefixtures("script")  # the character's model
async def test_a_worker_that_loses_its_session_connects_again(
    host: PluginHost,
    character: Character,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def run(self: object) -> None:  # procrastinate's worker, cut off the first time
        runs.append(1)
        if len(runs) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        await asyncio.Event().wait()  # serves until cancelled

    monkeypatch.setattr(carrier_plugin_workers.worker._DurableWorker, "run", run)
    stop = asyncio.Event()
    ready: list[str] = []

    def on_ready(line: str) -> None:
        ready.append(line)
        if len(ready) == 2:
            stop.set()

    code = await asyncio.wait_for(run_worker(host, [character], stop=stop, on_ready=on_ready), 20)
    assert code == 0
    assert len(ready) == 2  # a second session after the first was lost
    lost = [r.message for r in caplog.records if "Lost the queue's PostgreSQL" in r.message]
    assert lost == [
        "Lost the queue's PostgreSQL (server closed the connection unexpectedly); "
        "reconnecting in 0.5 s"
    ]


async def test_enqueueing_retries_a_lost_connection_but_not_a_server_that_is_down() -> None:
    lost = psycopg.OperationalError("terminating connection due to administrator command")
    calls = Calls(lost, lost, "enqueued")
    assert await enqueueing(pool_size=10)(calls) == "enqueued"
    assert calls.count == 3
    # every pooled connection lost: pool size + 1 tries, then the error
    always = Calls(lost)
    with pytest.raises(psycopg.OperationalError, match="administrator"):
        await enqueueing(pool_size=2)(always)
    assert always.count == 3
    # nothing to lend within the pool's timeout: the server is down, no second wait
    down = Calls(psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"))
    with pytest.raises(psycopg_pool.PoolTimeout):
        await enqueueing(pool_size=10)(down)
    assert down.count == 1
