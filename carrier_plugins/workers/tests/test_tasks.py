"""Scheduled tasks on three ``carrier worker`` processes over a real PostgreSQL: a task
repeating every second runs each due run exactly once across them for 30 s, and a
failing task is retried, then marked failed (docs/tasks.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing.distributions import plugin_distribution
from carrier.types import TaskStatus

CARRIER = Path(sys.executable).with_name("carrier")
PLUGIN = textwrap.dedent('''
    """Task workers that leave a line per run: 'name due_at pid'."""
    import os
    from pathlib import Path
    import carrier
    from carrier.protocols import TaskWorker

    OUT = Path(os.environ["TASKS_OUT"])

    class Note(TaskWorker):
        async def execute(self, runtime, task):
            with open(OUT, "a") as f:
                f.write(f"{task.name} {task.due_at!r} {os.getpid()}\\n")
            if task.payload.get("fail"):
                raise RuntimeError("the feed is down")

    @carrier.hookimpl
    def carrier_register_task_workers(task_workers):
        task_workers.add("note", Note)
''')


@pytest.fixture
async def agent(database: str) -> AsyncIterator[AgentRuntime]:
    settings = CarrierSettings(
        database_url=database, model_large="echo", model_embedding="none", _env_file=None
    )
    host = PluginHost(settings=settings)
    async with AgentRuntime(host=host) as runtime:
        yield runtime


def _start(
    env: dict[str, str], logs: list[list[str]], readers: list[threading.Thread]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(CARRIER), "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    log: list[str] = []
    logs.append(log)
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if line.startswith("carrier worker "):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    readers.append(reader)
    assert ready.wait(60), "".join(log)
    return process


async def test_three_workers_run_each_due_run_once(
    agent: AgentRuntime, database: str, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    site = plugin_distribution(tmp_path / "site", "tasknote", PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        PYTHONPATH=str(site),
        TASKS_OUT=str(out),
        CARRIER_DATABASE_URL=database,
        CARRIER_PLUGINS="sql,workers,tasknote",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_WORKERS_POLL_S="0.2",
        CARRIER_WORKERS_TASK_POLL_S="0.3",
        CARRIER_WORKERS_HEARTBEAT_S="0.5",
        CARRIER_WORKERS_STALLED_AFTER_S="3",
    )
    logs: list[list[str]] = []
    readers: list[threading.Thread] = []
    processes = [_start(env, logs, readers) for _ in range(3)]
    try:
        # the worker processes load the plugin; this process only schedules, so it
        # registers the name alone (schedule() refuses unknown workers)
        agent.host.task_workers.add("note", lambda: None)
        start = time.time() + 1
        every = await agent.tasks.schedule("every", worker="note", at=start, interval_s=1.0)
        failing = await agent.tasks.schedule(
            "boom", worker="note", payload={"fail": True}, max_attempts=3, backoff_s=0.5
        )
        await asyncio.sleep(31)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(30) for process in processes]
        for reader in readers:
            reader.join(10)
        for process in processes:
            if process.stderr is not None:
                process.stderr.close()
    assert codes == [0, 0, 0], "".join(line for log in logs for line in log[-20:])
    lines = [line.split() for line in out.read_text().splitlines()]
    runs = [float(due) for name, due, _ in lines if name == "every"]
    duplicates = [due for due, n in Counter(runs).items() if n > 1]
    assert duplicates == []  # each due run once across the three workers
    assert 27 <= len(runs) <= 31, len(runs)
    # on the second: every due time is the start plus a whole number of seconds
    assert all(abs((due - start) - round(due - start)) < 1e-6 for due in runs)
    booms = [name for name, _, _ in lines if name == "boom"]
    assert len(booms) == 3
    failed = await agent.tasks.get(failing.id)
    assert failed is not None
    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 3
    assert "the feed is down" in (failed.last_error or "")
    stored = await agent.tasks.get(every.id)
    assert stored is not None
    assert stored.runs == len(runs)
    pids = {pid for name, _, pid in lines if name == "every"}
    print(f"{len(runs)} runs over {len(pids)} worker processes")
