"""Scheduled tasks (docs/tasks.md) on the kernel's embedded scheduler."""

from __future__ import annotations

import asyncio
import time

import pytest

import carrier
from carrier import AgentRuntime, Character, PluginHost, Task, TaskStatus, TaskWorker
from carrier.builtin.memory_store import InMemoryStore
from carrier.errors import ConfigurationError, UnknownNameError
from carrier.tasks import run_scheduler

RUNS: list[tuple[str, float]] = []


class Tick(TaskWorker):
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        RUNS.append((task.name, time.time()))


class Flaky(TaskWorker):
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        RUNS.append((task.name, time.time()))
        raise RuntimeError("the feed is down")


class Plugin:
    @carrier.hookimpl
    def carrier_register_task_workers(self, task_workers):  # type: ignore[no-untyped-def]
        task_workers.add("tick", Tick, description="Counts its runs.")
        task_workers.add("flaky", Flaky, description="Always fails.")


@pytest.fixture
def host() -> PluginHost:
    RUNS.clear()
    host = PluginHost(autoload=False)
    host.register(Plugin(), name="ticks")
    return host


def _agent(host: PluginHost, store: InMemoryStore | None = None) -> AgentRuntime:
    return AgentRuntime(
        Character(name="Ada", bio=["Works."]),
        host=host,
        store=store,
        models={"large": "echo", "embedding": None},
    )


async def test_a_repeating_task_runs_on_schedule(host: PluginHost) -> None:
    async with _agent(host) as agent:
        task = await agent.tasks.schedule("every", worker="tick", interval_s=1.0)
        once = await agent.tasks.schedule("once", worker="tick", in_s=0.5)
        stop = asyncio.Event()
        started = time.time()
        scheduler = asyncio.create_task(run_scheduler([agent], stop, tick_s=0.05))
        await asyncio.sleep(3.4)
        stop.set()
        await scheduler
        every = [at - started for name, at in RUNS if name == "every"]
        assert len(every) == 4  # at 0, 1, 2 and 3 s
        for n, at in enumerate(every):
            assert n - 0.05 <= at <= n + 0.35, every  # on the second (a busy machine: late)
        assert [name for name, _ in RUNS].count("once") == 1
        stored = {t.id: t for t in await agent.tasks.list()}
        assert stored[once.id].status is TaskStatus.DONE
        assert stored[task.id].status is TaskStatus.SCHEDULED
        assert stored[task.id].runs == 4


async def test_a_failing_task_is_retried_with_backoff_then_failed(host: PluginHost) -> None:
    async with _agent(host) as agent:
        task = await agent.tasks.schedule("feed", worker="flaky", max_attempts=3, backoff_s=0.1)
        stop = asyncio.Event()
        scheduler = asyncio.create_task(run_scheduler([agent], stop, tick_s=0.02))
        for _ in range(100):
            await asyncio.sleep(0.05)
            current = await agent.tasks.get(task.id)
            if current is not None and current.status is TaskStatus.FAILED:
                break
        stop.set()
        await scheduler
        assert current is not None
        assert current.status is TaskStatus.FAILED
        assert current.attempts == 3
        assert "the feed is down" in (current.last_error or "")
        times = [at for _, at in RUNS]
        assert len(times) == 3
        assert times[1] - times[0] >= 0.09
        assert times[2] - times[1] >= 0.19


async def test_each_due_run_runs_once_across_processes(host: PluginHost) -> None:
    store = InMemoryStore()
    await store.open()
    async with _agent(host, store) as one, _agent(host, store) as two:
        for index in range(20):
            await one.tasks.schedule(f"t{index}", worker="tick")
        counts = await asyncio.gather(one.tasks.run_due(), two.tasks.run_due())
        assert sum(counts) == 20
        assert sorted(name for name, _ in RUNS) == sorted(f"t{i}" for i in range(20))
        assert await one.tasks.run_due() == 0
    await store.close()


async def test_unknown_workers_and_cron_without_a_parser_are_refused(host: PluginHost) -> None:
    async with _agent(host) as agent:
        with pytest.raises(UnknownNameError, match="tick"):
            await agent.tasks.schedule("x", worker="tikc")
        with pytest.raises(ConfigurationError, match="cron"):
            await agent.tasks.schedule("x", worker="tick", cron="* * * * *")


async def test_a_cron_plugin_answers_the_next_run(host: PluginHost) -> None:
    class Cron:
        @carrier.hookimpl
        def carrier_choose_next_run(self, task: Task, after: float) -> float | None:
            return after + 60 if task.cron == "@minutely" else None

    host.register(Cron(), name="cron")
    async with _agent(host) as agent:
        before = time.time()
        task = await agent.tasks.schedule("c", worker="tick", cron="@minutely")
        assert task.due_at is not None
        assert before + 59 < task.due_at < time.time() + 61
        assert await agent.tasks.run(task.id, task.due_at) is True
        after = await agent.tasks.get(task.id)
        assert after is not None
        assert after.due_at == pytest.approx(task.due_at + 60, abs=1)
