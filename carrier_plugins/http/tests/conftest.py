"""Fixtures: agents served by a real uvicorn on a free 127.0.0.1 port, httpx clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.server import running_server
from carrier_plugin_http.settings import HttpSettings

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import MemoryStore
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel


@dataclass
class Served:
    """A running server: its URL, runtimes, store and settings."""

    url: str
    runtimes: list[AgentRuntime]
    store: MemoryStore
    settings: HttpSettings

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **kwargs)


ServeFactory = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def http_settings(tmp_path: Path) -> HttpSettings:
    """Settings without limits that get in a test's way; uploads under ``tmp_path``."""
    return HttpSettings(_env_file=None, rate_limit_per_minute=0, upload_dir=tmp_path / "uploads")


@pytest.fixture
def settings_with(http_settings: HttpSettings) -> Callable[..., HttpSettings]:
    """``settings_with(user_tokens={...}, ...)``: ``http_settings`` with those fields,
    validated as the environment's values are (``model_copy`` would not)."""

    def make(**update: Any) -> HttpSettings:
        return HttpSettings(_env_file=None, **{**http_settings.model_dump(), **update})

    return make


@pytest.fixture
def serve_agents(host: PluginHost, http_settings: HttpSettings) -> ServeFactory:
    """``async with serve_agents([character, ...], model=...) as served:``; pass
    ``store=`` (unopened, e.g. a ``SqlStore``) to serve on it instead of in memory."""

    @asynccontextmanager
    async def serve(
        characters: Sequence[Character] = (),
        *,
        model: FakeModel | None = None,
        settings: HttpSettings | None = None,
        store: MemoryStore | None = None,
    ) -> AsyncIterator[Served]:
        model = model or FakeModel(default_text="hello from the agent")
        settings = settings or http_settings
        store = store or InMemoryStore()
        async with AsyncExitStack() as stack:
            await store.open()
            stack.push_async_callback(store.close)
            runtimes = []
            for character in characters or [Character(name="Testy")]:
                runtime = AgentRuntime(
                    character,
                    host=host,
                    store=store,
                    models={"large": model, "small": model, "embedding": None},
                )
                await stack.enter_async_context(runtime)
                runtimes.append(runtime)
            app = create_app(AgentHub(runtimes, host=host), settings)
            url = await stack.enter_async_context(running_server(app))
            yield Served(url=url, runtimes=runtimes, store=store, settings=settings)

    return serve


@pytest.fixture
def sse() -> Callable[[str], list[tuple[str, Any]]]:
    """Parses a Server-Sent Events body."""
    return parse_sse


def parse_sse(body: str) -> list[tuple[str, Any]]:
    """``[(event, data), ...]`` from a Server-Sent Events body."""
    import json

    events = []
    for block in body.strip().split("\n\n"):
        name, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((name, json.loads(data) if data else None))
    return events
