"""The installed distribution exposes the ``mcp`` entry point; discovery stays light."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from carrier_plugin_mcp import plugin

import carrier


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="mcp")
    assert [ep.value for ep in points] == ["carrier_plugin_mcp.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-mcp"
    assert point.load() is plugin


def test_autoloaded_host_offers_the_source_provider_and_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    host = carrier.PluginHost()
    assert "mcp" in host.action_sources.names()
    assert "mcp_resources" in host.providers.names()
    assert "mcp" in host.commands.names()


def test_importing_the_plugin_loads_no_mcp_sdk() -> None:
    code = (
        "import sys, carrier_plugin_mcp.plugin\n"
        "print(','.join(m for m in ('mcp', 'httpx2', 'anyio', 'pydantic_settings')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_runtime_without_mcp_servers_never_loads_the_sdk(tmp_path: Path) -> None:
    """`carrier chat` with no server configured: the SDK took ~1 s of its start-up."""
    script = """
import asyncio, sys
import carrier_plugin_mcp.plugin
from carrier import AgentRuntime, Character, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.testing import FakeModel

async def main():
    host = PluginHost(autoload=False)
    host.register(carrier_plugin_mcp.plugin, name="mcp")
    async with AgentRuntime(
        Character(name="Nova"), host=host, store=InMemoryStore(),
        models={"large": FakeModel(), "small": FakeModel(), "embedding": None},
    ) as agent:
        assert "mcp" in [s.name for s in agent.actions.sources]
        for user in ("ada", "bob"):
            reply = await agent.handle(IncomingMessage(text="hi", user_id=user))
            assert reply.texts, reply
    print(",".join(m for m in ("mcp", "httpx2", "anyio") if m in sys.modules))

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_MCP_")}
    found = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # no .env file
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == ""
