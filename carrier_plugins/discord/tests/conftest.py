"""Fixtures: a fake Discord (REST + gateway on 127.0.0.1), and agents served on it by
the real client under the kernel's supervisor (discord.py talks HTTP and WebSocket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import carrier_plugin_discord.plugin
import pytest
from carrier_plugin_discord.sdk import discord
from carrier_plugin_discord.testing import FakeDiscord

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import MemoryStore, Model
from carrier.runtime import AgentRuntime
from carrier.services import ServiceHealth, Supervisor
from carrier.testing import FakeModel

GUILD = 700
OTHER_GUILD = 800
TEXT = 710
FORUM = 720
THREAD = 711
FORUM_POST = 721
OTHER_TEXT = 810
ADMIN_ROLE = 791
HELPER_ROLE = 792
OTHER_ADMIN_ROLE = 891
DM_ALICE = 901
DM_BOB = 902
ALICE = 11
BOB = 12


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"discord": carrier_plugin_discord.plugin}


@pytest.fixture(autouse=True)
def _restore_discord_endpoints() -> Iterator[None]:
    """The client points discord.py's class attributes at the fake; put them back."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_guild(
            GUILD,
            channels={TEXT: 0, FORUM: 15},
            threads={THREAD: TEXT, FORUM_POST: FORUM},
            roles={ADMIN_ROLE: 1 << 3, HELPER_ROLE: 0},
        )
        server.add_guild(OTHER_GUILD, channels={OTHER_TEXT: 0}, roles={OTHER_ADMIN_ROLE: 1 << 3})
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


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - state of other objects, polled
            await asyncio.sleep(0.01)


def discord_secrets(fake: FakeDiscord, **settings: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "typing_interval_s": 0.05,
        "dm_policy": "open",
        "drain_timeout_s": 2,
        **settings,
    }
    return fake.settings(**values)


@pytest.fixture
def serve(host: PluginHost, fake: FakeDiscord) -> ServeFactory:
    """``async with serve(model=..., **discord_settings) as served:`` runs the discord
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
        character = Character(name=name, secrets=discord_secrets(fake, **settings))
        runtime = AgentRuntime(
            character,
            host=host,
            store=store or InMemoryStore(),
            models={"large": model, "small": model, "embedding": None},
        )
        async with runtime:
            supervisor = Supervisor(host, [runtime], only=["discord"], backoff_initial_s=0.1)
            async with supervisor:
                served = Served(runtime, supervisor, model)
                if wait_ready:
                    await wait_until(lambda: served.health.state == "running")
                yield served

    return run
