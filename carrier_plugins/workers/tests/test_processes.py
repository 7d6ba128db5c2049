"""Worker processes on a real PostgreSQL: four sharing the load, one killed with
SIGKILL mid-run, and PostgreSQL restarted mid-run. Each run checks that every
message is stored once and answered once, and that each room's messages were
handled one at a time, in the order they were enqueued. Last, exactly once (DESIGN
§8): a worker killed in the middle of a message's actions, whose completed action
never runs again."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from carrier_plugin_sql.testing import LocalPostgres
from carrier_plugin_workers.executor import Enqueued, WorkersExecutor

from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing.distributions import plugin_distribution
from carrier.types import IncomingMessage, Reply

SLOW_WORKER = Path(__file__).with_name("slow_worker.py")
CARRIER = Path(sys.executable).with_name("carrier")


class Workers:
    """Worker processes started with one environment; stopped (SIGTERM) at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[str]] = []
        self.logs: list[list[str]] = []
        self.readers: list[threading.Thread] = []

    def start(self, command: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command, env=self.env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        log: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                log.append(line)
                if line.startswith("carrier worker "):
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.readers.append(reader)
        self.processes.append(process)
        self.logs.append(log)
        deadline = time.monotonic() + 60
        while not ready.wait(0.1):
            assert process.poll() is None, "".join(log)
            assert time.monotonic() < deadline, "".join(log)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in zip(self.processes, self.logs, strict=True):
            try:
                code = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            finally:
                for reader in self.readers:
                    reader.join(10)
                if process.stderr is not None:
                    process.stderr.close()
            assert code in (0, -signal.SIGKILL), "".join(log)


@pytest.fixture
def worker_env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        CARRIER_DATABASE_URL=database,
        CARRIER_PLUGINS="sql,workers",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_WORKERS_HEARTBEAT_S="0.5",
        CARRIER_WORKERS_STALLED_AFTER_S="2",
        CARRIER_WORKERS_RETRY_WAIT_S="0.2",
        CARRIER_WORKERS_POLL_S="0.5",
        SLOW_MODEL_LATENCY_S="0.05",
    )
    return env


@pytest.fixture
def workers(worker_env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(worker_env)
    yield started
    started.stop()


@pytest.fixture
async def client(database: str) -> AsyncIterator[AgentRuntime]:
    """The default character, enqueueing (its own model is never called)."""
    settings = CarrierSettings(
        database_url=database,
        executor="workers",
        model_large="echo",
        model_embedding="none",
        _env_file=None,
    )
    host = PluginHost(settings=settings)
    async with AgentRuntime(host=host) as runtime:
        yield runtime


async def _enqueue(client: AgentRuntime, rooms: int, per_room: int) -> list[Enqueued]:
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    messages = [
        IncomingMessage(text=f"room {r} message {n}", room_id=f"room-{r}", user_id=f"user-{r}")
        for r in range(rooms)
        for n in range(per_room)
    ]
    return await executor.enqueue_many(client, messages)


async def _wait_all(
    client: AgentRuntime, enqueued: list[Enqueued], workers: Workers
) -> list[Reply]:
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(executor.wait(client, e) for e in enqueued)), 120
        )
    except TimeoutError:  # say what was left, and what the workers said
        left = []
        for e in enqueued:
            reply = await client.stored_reply(e.message_id)
            if reply is None or not reply.responses:
                left.append(e.message_id)
        logs = "".join(line for log in workers.logs for line in log[-20:])
        raise AssertionError(f"{len(left)} unanswered, e.g. {left[:3]}\n{logs}") from None


async def _check_once_and_in_order(
    client: AgentRuntime, enqueued: list[Enqueued], replies: list[Reply]
) -> None:
    assert [r.error for r in replies] == [None] * len(enqueued)
    assert all(len(r.responses) == 1 for r in replies)
    store = client.store
    by_room: dict[str, list[Enqueued]] = {}
    for e in enqueued:
        by_room.setdefault(e.room_id, []).append(e)
    for room_id, queued in by_room.items():
        stored = await store.get_memories(
            agent_id=client.agent_id, room_id=room_id, limit=10 * len(queued)
        )
        ids = sorted(m.id for m in stored)
        expected = sorted(
            [e.message_id for e in queued] + [f"{e.message_id}-{client.agent_id}" for e in queued]
        )
        assert ids == expected, f"{room_id}: stored {len(ids)}, expected {len(expected)}"
        by_id = {m.id: m for m in stored}
        for earlier, later in itertools.pairwise(queued):
            answer = by_id[f"{earlier.message_id}-{client.agent_id}"]
            # the later message was received only after the earlier one was answered
            assert by_id[later.message_id].created_at >= answer.created_at, room_id
            assert answer.content.in_reply_to == earlier.message_id


async def test_four_worker_processes_share_the_load_in_order(
    client: AgentRuntime, workers: Workers
) -> None:
    for _ in range(4):
        workers.start([str(CARRIER), "worker"])
    enqueued = await _enqueue(client, rooms=50, per_room=20)
    replies = await _wait_all(client, enqueued, workers)
    await _check_once_and_in_order(client, enqueued, replies)
    assert replies[0].texts == ["You said: room 0 message 0"]
    served = [sum("Requeueing" in line for line in log) for log in workers.logs]
    assert served == [0, 0, 0, 0]


async def test_a_worker_killed_mid_run_loses_nothing(
    client: AgentRuntime, workers: Workers, worker_env: dict[str, str]
) -> None:
    worker_env["CARRIER_MODEL_LARGE"] = "slow"
    victim = workers.start([sys.executable, str(SLOW_WORKER)])
    for _ in range(2):
        workers.start([sys.executable, str(SLOW_WORKER)])
    enqueued = await _enqueue(client, rooms=24, per_room=10)
    await asyncio.sleep(0.4)  # ~100 of 240 answered: the victim has messages in hand
    answered_before = sum(
        [await client.stored_reply(e.message_id) is not None for e in enqueued[:12]]
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)  # reaped, as a supervisor would: a zombie's pid still looks alive
    started = time.monotonic()
    replies = await _wait_all(client, enqueued, workers)
    assert answered_before > 0
    await _check_once_and_in_order(client, enqueued, replies)
    assert time.monotonic() - started < 60
    assert any("Requeueing job" in line for log in workers.logs[1:] for line in log)


async def test_a_worker_removed_as_stalled_by_a_peer_registers_again(
    client: AgentRuntime, workers: Workers, database: str
) -> None:
    """After PostgreSQL was away longer than ``stalled_after_s``, a peer may have pruned
    this worker's registration (and requeued its jobs): its next job would break the
    jobs' foreign key to it. It starts a new session instead of exiting."""
    import asyncpg

    worker = workers.start([str(CARRIER), "worker"])
    connection = await asyncpg.connect(database)
    try:  # once it has registered, what a peer's prune of stalled workers does
        for _ in range(100):
            if await connection.fetchval("SELECT count(*) FROM procrastinate_workers"):
                break
            await asyncio.sleep(0.05)
        assert await connection.execute("DELETE FROM procrastinate_workers") == "DELETE 1"
    finally:
        await connection.close()
    enqueued = await _enqueue(client, rooms=2, per_room=3)  # two users
    replies = await _wait_all(client, enqueued, workers)
    await _check_once_and_in_order(client, enqueued, replies)
    assert worker.poll() is None  # still serving
    assert any("took this one for stalled" in line for line in workers.logs[0])


async def test_postgres_restarted_mid_run_loses_nothing(
    client: AgentRuntime, workers: Workers, worker_env: dict[str, str], postgres: LocalPostgres
) -> None:
    worker_env["CARRIER_MODEL_LARGE"] = "slow"
    # a run whose lease could not be released while the server was down holds its
    # message until the lease expires (the kernel does not retry the release): when its
    # job's retry lands on the other worker, that one waits, so keep the wait short
    worker_env["CARRIER_LEASE_TTL_S"] = "6"
    for _ in range(2):
        workers.start([sys.executable, str(SLOW_WORKER)])
    enqueued = await _enqueue(client, rooms=20, per_room=10)
    for _ in range(2):  # twice: some jobs end while the server is down
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.restart)
    replies = await _wait_all(client, enqueued, workers)
    await _check_once_and_in_order(client, enqueued, replies)
    for process in workers.processes:
        assert process.poll() is None  # still serving


async def test_a_message_sent_after_postgres_restarted_is_enqueued(
    client: AgentRuntime, postgres: LocalPostgres
) -> None:
    """The queue's pool does not test a connection before lending it (a round trip
    each time): the first call after a restart meets a dead connection and is retried
    on a fresh one instead of failing."""
    assert len(await _enqueue(client, rooms=1, per_room=1)) == 1  # the pool is open
    await asyncio.to_thread(postgres.restart)
    assert len(await _enqueue(client, rooms=2, per_room=1)) == 2


#: A plugin for ``carrier worker`` children: a scripted model that calls CHARGE, then
#: CRASH; each action run appends its idempotency key to a file; CRASH kills its own
#: process the first time it runs.
ONCE_PLUGIN = textwrap.dedent("""
    import os, signal
    from pathlib import Path
    import carrier
    from carrier.protocols import Action, Model
    from carrier.types import ActionCall, ActionResult, ModelResponse

    OUT = Path(os.environ["ONCE_DIR"])

    def note(name, line):
        with open(OUT / name, "a") as f:
            f.write(line + "\\n")

    class Scripted(Model):
        name = "scripted"
        async def generate(self, request):
            note("model", request.messages[-1].content)
            if request.actions and request.metadata.get("step") == 0:
                calls = [ActionCall(name="CHARGE"), ActionCall(name="CRASH")]
                return ModelResponse(text="Charged.", action_calls=calls)
            return ModelResponse(text="Charged.")

    class Charge(Action):
        name = "CHARGE"
        description = "Charges the card (an external effect)."
        async def handler(self, runtime, message, state, arguments):
            note("charge", state.idempotency_key)
            return ActionResult(name=self.name, text="charged")

    class Crash(Action):
        name = "CRASH"
        description = "Kills its worker the first time it runs."
        async def handler(self, runtime, message, state, arguments):
            note("crash", state.idempotency_key)
            if not (OUT / "crashed").exists():
                (OUT / "crashed").write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return ActionResult(name=self.name, text="survived")

    @carrier.hookimpl
    def carrier_register_models(models):
        models.add("scripted", lambda **_: Scripted())

    @carrier.hookimpl
    def carrier_register_actions(actions):
        actions.add("CHARGE", Charge)
        actions.add("CRASH", Crash)
""")


@pytest.fixture
def once_env(tmp_path: Path, worker_env: dict[str, str]) -> dict[str, str]:
    """Workers loading ``ONCE_PLUGIN`` through a ``carrier`` entry point, as if installed."""
    site = plugin_distribution(tmp_path / "site", "once", ONCE_PLUGIN)
    worker_env.update(
        PYTHONPATH=str(site),
        ONCE_DIR=str(tmp_path),
        CARRIER_PLUGINS="once,sql,workers",
        CARRIER_MODEL_LARGE="scripted",
        CARRIER_MODEL_SMALL="scripted",
    )
    return worker_env


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_worker_killed_mid_message_reruns_only_the_unfinished_action(
    client: AgentRuntime, workers: Workers, once_env: dict[str, str], tmp_path: Path
) -> None:
    for _ in range(2):
        workers.start([str(CARRIER), "worker"])
    executor = client.executor
    assert isinstance(executor, WorkersExecutor)
    [enqueued] = await executor.enqueue_many(
        client, [IncomingMessage(text="charge my card", room_id="shop", user_id="buyer")]
    )
    deadline = time.monotonic() + 30
    while not any(process.poll() is not None for process in workers.processes):  # reaps it
        assert time.monotonic() < deadline, "no worker was killed"
        await asyncio.sleep(0.05)
    [victim] = [process for process in workers.processes if process.returncode is not None]
    assert victim.returncode == -signal.SIGKILL
    assert _lines(tmp_path / "charge") == [f"{enqueued.message_id}:0:0"]
    assert len(_lines(tmp_path / "crash")) == 1
    cut_off = await client.stored_reply(enqueued.message_id)
    assert cut_off is not None  # stored before the model was asked ...
    assert cut_off.responses == []  # ... and never answered by the victim

    # the other worker's sweep requeues the job; it takes over the dead worker's lease
    reply = await asyncio.wait_for(executor.wait(client, enqueued), 30)
    assert reply.error is None
    assert reply.texts == ["Charged."]
    assert _lines(tmp_path / "charge") == [f"{enqueued.message_id}:0:0"]  # never again
    assert _lines(tmp_path / "crash") == [f"{enqueued.message_id}:0:1"] * 2  # same key
    assert _lines(tmp_path / "model") == ["charge my card"]  # replayed, not asked again
    answer = f"{enqueued.message_id}-{client.agent_id}"
    assert await client.store.get_memory(answer) is not None
    assert await client.store.get_memory(f"{answer}-1") is None  # the reply, stored once

    # a restarted worker recovers at start: nothing is left to do
    workers.start([str(CARRIER), "worker"])
    assert len(_lines(tmp_path / "charge")) == 1
    assert len(_lines(tmp_path / "crash")) == 2
    assert await client.store.get_memory(f"{answer}-1") is None
    assert await client.store.unanswered_messages(agent_id=client.agent_id) == []
