"""A PostgreSQL server of the workers tests' own (the restart test restarts it),
a fresh database per test, and a host wired for the ``workers`` executor."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import carrier_plugin_sql.plugin
import carrier_plugin_workers.plugin
import pytest
from carrier_plugin_sql.testing import LocalPostgres, fresh_database, local_postgres
from carrier_plugin_workers.executor import WorkersExecutor
from carrier_plugin_workers.worker import run_worker

import carrier
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FunctionModel
from carrier.types import ModelRequest


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    # not under pytest's basetemp: another pytest run may rotate that away mid-session
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_postgres(Path(tmp) / "pgdata-workers") as server,
    ):
        yield server


@pytest.fixture
async def database(postgres: LocalPostgres) -> AsyncIterator[str]:
    async with fresh_database(postgres.url, "carrier_workers") as url:
        yield url


@pytest.fixture
def carrier_settings(database: str) -> CarrierSettings:
    return CarrierSettings(
        database_url=database,
        executor="workers",
        model_large="scripted",
        model_embedding="none",
        _env_file=None,
    )


@pytest.fixture
def host(carrier_settings: CarrierSettings, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """The sql and workers plugins, fast retries and heartbeats; add a ``scripted`` model."""
    for name, value in {
        "CARRIER_WORKERS_RETRY_WAIT_S": "0",
        "CARRIER_WORKERS_HEARTBEAT_S": "0.5",
        "CARRIER_WORKERS_STALLED_AFTER_S": "2",
        "CARRIER_WORKERS_POLL_S": "0.2",
        "CARRIER_WORKERS_MAX_ATTEMPTS": "3",
        "CARRIER_WORKERS_REPLY_TIMEOUT_S": "30",
    }.items():
        monkeypatch.setenv(name, value)
    plugin_host = PluginHost(autoload=False, settings=carrier_settings)
    plugin_host.register(carrier_plugin_sql.plugin, name="sql")
    plugin_host.register(carrier_plugin_workers.plugin, name="workers")
    return plugin_host


@dataclass
class Script:
    """What the scripted model does: answers ``"re: <text>"``; fails while ``failures`` > 0."""

    seen: list[str] = field(default_factory=list)
    failures: int = 0
    always_fail: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    busy_rooms: set[str] = field(default_factory=set)
    overlaps: int = 0

    async def __call__(self, request: ModelRequest) -> str:
        text = request.messages[-1].content
        self.seen.append(text)
        room = text.split()[0]
        self.overlaps += room in self.busy_rooms  # two messages of one room at once
        self.busy_rooms.add(room)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.busy_rooms.discard(room)
        if text in self.always_fail:
            raise RuntimeError(f"cannot answer {text!r}")
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a flaky bug")
        return f"re: {text}"


class ScriptedModels:
    def __init__(self, script: Script) -> None:
        self.model = FunctionModel(script, name="scripted")

    @carrier.hookimpl
    def carrier_register_models(self, models: Registry[Model]) -> None:
        models.add("scripted", lambda **_: self.model)


@pytest.fixture
def script(host: PluginHost) -> Script:
    script = Script()
    host.register(ScriptedModels(script), name="scripted-models")
    return script


@pytest.fixture
async def client(
    host: PluginHost, character: Character, script: Script
) -> AsyncIterator[AgentRuntime]:
    async with AgentRuntime(character, host=host) as runtime:
        assert isinstance(runtime.executor, WorkersExecutor)
        yield runtime


@pytest.fixture
async def start_worker(
    host: PluginHost, character: Character
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Call it to start a worker in this event loop (stopped after the test)."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[int]] = []

    async def start() -> None:
        ready = asyncio.Event()
        tasks.append(
            asyncio.create_task(
                run_worker(host, [character], stop=stop, on_ready=lambda _: ready.set())
            )
        )
        await asyncio.wait_for(ready.wait(), 30)

    yield start
    stop.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 30) == [0] * len(tasks)
