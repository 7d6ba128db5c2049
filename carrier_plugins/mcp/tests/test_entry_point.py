"""The installed distribution exposes the ``mcp`` entry point; discovery stays light."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

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
