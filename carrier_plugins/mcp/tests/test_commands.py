"""``carrier mcp list``: the configured servers, their state and their tools."""

from __future__ import annotations

import asyncio
import sys

import pytest
from carrier_plugin_mcp.testing import server_entry

from carrier.testing import CliRunner

from .conftest import configure


async def test_list_shows_servers_states_and_tools(
    monkeypatch: pytest.MonkeyPatch, carrier_cli: CliRunner
) -> None:
    broken = {"command": sys.executable, "args": ["-c", "raise SystemExit(1)"]}
    configure(
        monkeypatch,
        {
            "test": server_entry(
                toolRoles={"reset": "admin"}, deny=["crash"], requireApproval=["re*"]
            ),
            "broken": broken,
        },
    )
    result = await asyncio.to_thread(carrier_cli, "mcp", "list", "--wait", "10")
    assert result.exit_code == 1  # one server is down
    out = result.stdout
    assert "test  stdio" in out
    assert "state: running  9 tools" in out
    assert "test__add: Add two integers." in out
    assert "test__reset: Reset everything (dangerous).  (role: admin)  (approval: admin)" in out
    assert "test__crash" not in out
    assert "broken  stdio" in out
    broken_state = out.split("broken  stdio", 1)[1]  # down, and being tried again
    assert "state: restarting" in broken_state or "state: starting" in broken_state


async def test_list_without_configuration(carrier_cli: CliRunner) -> None:
    result = await asyncio.to_thread(carrier_cli, "mcp", "list")
    assert result.exit_code == 0
    assert "No MCP server is configured" in result.stdout


async def test_serve_over_http_needs_tokens(carrier_cli: CliRunner) -> None:
    result = await asyncio.to_thread(carrier_cli, "mcp", "serve", "--http")
    assert result.exit_code == 1
    assert "needs CARRIER_MCP_USER_TOKENS" in result.stderr


async def test_serve_over_http_binds_loopback_only(
    monkeypatch: pytest.MonkeyPatch, carrier_cli: CliRunner
) -> None:
    monkeypatch.setenv("CARRIER_MCP_HOST", "0.0.0.0")
    monkeypatch.setenv("CARRIER_MCP_USER_TOKENS", '{"t": "alice"}')
    result = await asyncio.to_thread(carrier_cli, "mcp", "serve", "--http")
    assert result.exit_code == 1
    assert "binds loopback only" in result.stderr
