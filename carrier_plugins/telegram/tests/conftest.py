"""Fixtures: a fake Bot API server, and agents served on it by the real client under the
kernel's supervisor (python-telegram-bot talks HTTP to 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import carrier_plugin_telegram.plugin
import pytest
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import MemoryStore, Model
from carrier.runtime import AgentRuntime
from carrier.services import ServiceHealth, Supervisor
from carrier.testing import FakeModel


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"telegram": carrier_plugin_telegram.plugin}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@dataclass
class Served:
    runtime: AgentRuntime
    supervisor: Supervisor
    model: Model

    @property
    def health(self) -> ServiceHealth:
        (found,) = self.supervisor.health()
        return found


ServeFactory = Callable[..., AbstractAsyncContextManager[Served]]


def telegram_secrets(fake: FakeTelegram, **settings: Any) -> dict[str, str]:
    """A character's TELEGRAM_* secrets pointing at ``fake`` (fast timings for tests)."""
    values: dict[str, Any] = {
        "token": fake.token,
        "base_url": fake.url,
        "poll_timeout_s": 1,
        "typing_interval_s": 0.05,
        "dm_policy": "open",
        "lock_ttl_s": 3,
        "drain_timeout_s": 2,
        **settings,
    }
    return {f"TELEGRAM_{k.upper()}": str(v) for k, v in values.items()}


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    import asyncio

    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - state of other objects, polled
            await asyncio.sleep(0.01)


@pytest.fixture
def serve(host: PluginHost, fake: FakeTelegram) -> ServeFactory:
    """``async with serve(model=..., **telegram_settings) as served:`` runs the telegram
    client for one agent ("Testy") until the block ends."""

    @asynccontextmanager
    async def run(
        *,
        model: Model | None = None,
        store: MemoryStore | None = None,
        name: str = "Testy",
        wait_ready: bool = True,
        **settings: Any,
    ) -> AsyncIterator[Served]:
        model = model or FakeModel(default_text="hello from the agent")
        character = Character(name=name, secrets=telegram_secrets(fake, **settings))
        runtime = AgentRuntime(
            character,
            host=host,
            store=store or InMemoryStore(),
            models={"large": model, "small": model, "embedding": None},
        )
        async with runtime:
            supervisor = Supervisor(host, [runtime], only=["telegram"], backoff_initial_s=0.1)
            async with supervisor:
                served = Served(runtime, supervisor, model)
                if wait_ready:
                    await wait_until(lambda: served.health.state == "running")
                yield served

    return run
