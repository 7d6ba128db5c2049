"""Each due task run is its own procrastinate job on a real PostgreSQL: planning defers
one job per run in one statement; a job claims the other due jobs of its agent's queue
(not runs due later, not another agent's) and each run executes once (docs/tasks.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import carrier_plugin_sql.plugin
import carrier_plugin_workers.plugin
import psycopg
import pytest
from carrier_plugin_workers.queue import build_app, ensure_schema, queue_for, queue_target
from carrier_plugin_workers.settings import WorkersSettings
from carrier_plugin_workers.tasks import _CLAIM, TASK_RUN, plan_once, register_task_runner

import carrier
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import TaskWorker
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.types import Task, TaskStatus

RAN: list[tuple[str, str]] = []


class Note(TaskWorker):
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        await asyncio.sleep(float(task.payload.get("sleep_s", 0)))
        RAN.append((runtime.character.name, task.name))


class NotePlugin:
    @carrier.hookimpl
    def carrier_register_task_workers(self, task_workers: Any) -> None:
        task_workers.add("note", Note)


async def _jobs(database: str, queue: str) -> Counter[str]:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE queue_name = %s", (queue,)
        )
        return Counter(str(row[0]) for row in await cursor.fetchall())


@pytest.mark.parametrize(("batch", "keep"), [(50, True), (50, False), (1, True)])
async def test_one_job_per_run_claimed_with_its_due_siblings_once(
    database: str, batch: int, keep: bool
) -> None:
    RAN.clear()
    settings = CarrierSettings(
        database_url=database, model_large="echo", model_embedding="none", _env_file=None
    )
    host = PluginHost(autoload=False, settings=settings)
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(carrier_plugin_workers.plugin, name="workers")
    host.register(NotePlugin(), name="note")
    workers = WorkersSettings(task_horizon_s=120, task_batch=batch, keep_jobs=keep)
    async with (
        AgentRuntime(Character(name="Ada"), host=host) as ada,
        AgentRuntime(Character(name="Bob"), host=host) as bob,
    ):
        due = time.time() + 0.5
        for n in range(30):
            await ada.tasks.schedule(f"ada-{n}", worker="note", at=due, payload={"sleep_s": 0.1})
        later = await ada.tasks.schedule("ada-later", worker="note", at=due + 60)
        for n in range(5):
            await bob.tasks.schedule(f"bob-{n}", worker="note", at=due)
        runtimes = {ada.agent_id: ada, bob.agent_id: bob}
        target = queue_target(workers, settings)
        await ensure_schema(target)
        app = build_app(target, workers)
        register_task_runner(app, runtimes, workers)
        async with app.open_async():
            assert await plan_once(app, runtimes, workers) == 36
            assert await plan_once(app, runtimes, workers) == 0  # deferred once
            ada_queue, bob_queue = queue_for(ada.agent_id), queue_for(bob.agent_id)
            assert await _jobs(database, ada_queue) == {"todo": 31}  # one job per run
            assert await _jobs(database, bob_queue) == {"todo": 5}

            while time.time() < due:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            # one worker on Ada's queue, one job at a time, until none is due: the first
            # job takes on the others (30 runs of 0.1 s at once), unless task_batch is 1
            delete = "never" if keep else "successful"  # as the worker's keep_jobs does
            started = time.monotonic()
            await app.run_worker_async(
                queues=[ada_queue],
                concurrency=1,
                wait=False,
                delete_jobs=delete,
            )
            took = time.monotonic() - started
            assert took < 2.0 if batch > 1 else took >= 3.0, took
            assert Counter(RAN) == {("Ada", f"ada-{n}"): 1 for n in range(30)}
            finished = {"succeeded": 30} if keep else {}  # kept, or deleted as procrastinate does
            assert await _jobs(database, ada_queue) == {**finished, "todo": 1}
            assert await _jobs(database, bob_queue) == {"todo": 5}  # not Ada's to take

            await app.run_worker_async(
                queues=[bob_queue], concurrency=1, wait=False, delete_jobs=delete
            )
        assert Counter(RAN) == {
            **{("Ada", f"ada-{n}"): 1 for n in range(30)},
            **{("Bob", f"bob-{n}"): 1 for n in range(5)},
        }
        assert await _jobs(database, bob_queue) == ({"succeeded": 5} if keep else {})
        ada_tasks = {t.name: t for t in await ada.tasks.list()}
        assert ada_tasks["ada-0"].status is TaskStatus.DONE
        assert ada_tasks["ada-later"].status is TaskStatus.SCHEDULED
        assert await bob.tasks.get(later.id) is None  # Bob never sees Ada's tasks
        assert {t.name for t in await bob.tasks.list()} == {f"bob-{n}" for n in range(5)}


async def test_runs_claimed_by_a_worker_that_died_are_requeued_and_run_once(
    database: str,
) -> None:
    """A job's worker claimed due runs, then died (SIGKILL) before finishing them: they
    stay ``doing`` under it, the stalled-worker sweep finds and requeues them, and each
    runs once; another agent's runs are neither claimed nor requeued."""
    RAN.clear()
    settings = CarrierSettings(
        database_url=database, model_large="echo", model_embedding="none", _env_file=None
    )
    host = PluginHost(autoload=False, settings=settings)
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(carrier_plugin_workers.plugin, name="workers")
    host.register(NotePlugin(), name="note")
    workers = WorkersSettings(task_horizon_s=120, keep_jobs=False)
    async with (
        AgentRuntime(Character(name="Ada"), host=host) as ada,
        AgentRuntime(Character(name="Bob"), host=host) as bob,
    ):
        due = time.time() + 0.3
        for n in range(10):
            await ada.tasks.schedule(f"ada-{n}", worker="note", at=due)
        for n in range(3):
            await bob.tasks.schedule(f"bob-{n}", worker="note", at=due)
        runtimes = {ada.agent_id: ada, bob.agent_id: bob}
        target = queue_target(workers, settings)
        await ensure_schema(target)
        app = build_app(target, workers)
        register_task_runner(app, runtimes, workers)
        ada_queue, bob_queue = queue_for(ada.agent_id), queue_for(bob.agent_id)
        async with app.open_async():
            assert await plan_once(app, runtimes, workers) == 13
            while time.time() < due:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            dead = await app.job_manager.register_worker()
            claimed = await app.connector.execute_query_all_async(
                query=_CLAIM, worker_id=dead, queue=ada_queue, task=TASK_RUN, limit=49
            )
            assert len(claimed) == 10
            assert await _jobs(database, ada_queue) == {"doing": 10}
            assert await _jobs(database, bob_queue) == {"todo": 3}
            await app.run_worker_async(
                queues=[ada_queue], concurrency=1, wait=False, delete_jobs="successful"
            )
            assert RAN == []  # held by the dead worker

            await asyncio.sleep(1.5)  # its heartbeat grows old: what the sweep requeues
            stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=1))
            assert {job.id for job in stalled} == {row["id"] for row in claimed}
            for job in stalled:
                await app.job_manager.retry_job(job)
            await app.run_worker_async(
                queues=[ada_queue], concurrency=1, wait=False, delete_jobs="successful"
            )
            assert Counter(RAN) == {("Ada", f"ada-{n}"): 1 for n in range(10)}
            assert await _jobs(database, ada_queue) == {}
            await app.run_worker_async(
                queues=[bob_queue], concurrency=1, wait=False, delete_jobs="successful"
            )
        assert Counter(RAN) == {
            **{("Ada", f"ada-{n}"): 1 for n in range(10)},
            **{("Bob", f"bob-{n}"): 1 for n in range(3)},
        }
