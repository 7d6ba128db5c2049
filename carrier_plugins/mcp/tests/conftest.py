"""Fixtures: agents whose MCP servers are the SDK-written test server
(``carrier_plugin_mcp.testing``), run as a real subprocess or over HTTP on 127.0.0.1,
with a scripted model and the SQLite store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import carrier_plugin_mcp.plugin
import carrier_plugin_sql.plugin
import pytest
from carrier_plugin_mcp.testing import server_entry

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"mcp": carrier_plugin_mcp.plugin, "sql": carrier_plugin_sql.plugin}


@pytest.fixture
def carrier_settings(tmp_path: Path) -> CarrierSettings:
    return CarrierSettings(database_url=f"sqlite:///{tmp_path}/agents.db", _env_file=None)


def configure(monkeypatch: pytest.MonkeyPatch, servers: dict[str, Any], **settings: Any) -> None:
    """Point CARRIER_MCP_CONFIG at ``servers`` (inline JSON) with fast test timings."""
    monkeypatch.setenv("CARRIER_MCP_CONFIG", json.dumps({"mcpServers": servers}))
    values = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, **settings}
    for key, value in values.items():
        monkeypatch.setenv(f"CARRIER_MCP_{key.upper()}", str(value))


AgentFactory = Callable[..., AbstractAsyncContextManager[AgentRuntime]]


@pytest.fixture
def agent(host: PluginHost, fake_model: FakeModel) -> AgentFactory:
    """``async with agent(**character_settings) as runtime``: a started agent."""

    @asynccontextmanager
    async def start(**settings: Any) -> AsyncIterator[AgentRuntime]:
        character = Character(name="Testy", bio=["A careful test agent."], settings=settings)
        runtime = AgentRuntime(
            character,
            host=host,
            models={"large": fake_model, "small": fake_model, "embedding": None},
        )
        async with runtime:
            yield runtime

    return start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class HttpServer:
    """The test server over Streamable HTTP on 127.0.0.1, in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carrier_plugin_mcp.testing", "--http", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["AgentFactory", "HttpServer", "configure", "server_entry"]
