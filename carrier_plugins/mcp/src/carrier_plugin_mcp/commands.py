"""``carrier mcp list`` and ``carrier mcp serve [CHARACTER]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

from carrier.errors import ConfigurationError
from carrier.protocols import Command

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier_plugin_mcp.settings import McpSettings

__all__ = ["McpCommand"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class McpCommand(Command):
    """List the configured MCP servers, or serve an agent over MCP."""

    help = "MCP: list the configured servers, or serve an agent over MCP."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="mcp_command", required=True)
        listing = actions.add_parser(
            "list", help="Show the configured servers, their state and their tools."
        )
        listing.add_argument(
            "--wait",
            type=float,
            default=None,
            help="Seconds to wait for the servers (default: their connect timeouts).",
        )
        serve = actions.add_parser("serve", help="Serve an agent over MCP (stdio by default).")
        serve.add_argument(
            "character", nargs="?", help="Character file (default: CARRIER_CHARACTER)."
        )
        serve.add_argument(
            "--http",
            action="store_true",
            help="Streamable HTTP on 127.0.0.1 (needs CARRIER_MCP_USER_TOKENS).",
        )
        serve.add_argument("--port", type=int, default=None, help="Port (CARRIER_MCP_PORT).")

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        from carrier_plugin_mcp.settings import McpSettings

        settings = host.settings.get("mcp")
        assert isinstance(settings, McpSettings)
        if args.mcp_command == "list":
            return await _list(settings, args.wait)
        return await _serve(host, settings, args)


async def _list(settings: McpSettings, wait: float | None) -> int:
    from carrier_plugin_mcp.config import assign_action_names, load_servers
    from carrier_plugin_mcp.connection import McpConnection

    servers = load_servers(settings.config)
    if not servers:
        print("No MCP server is configured; set CARRIER_MCP_CONFIG (see the plugin's README).")
        return 0
    connections = [McpConnection(s, settings) for s in servers.values()]
    for connection in connections:
        connection.start()
    try:
        limit = wait or max(c.connect_timeout_s for c in connections)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await asyncio.gather(*(c.first_attempt() for c in connections))
        failed = 0
        for connection in connections:
            config, health = connection.config, connection.health
            print(f"{config.name}  {config.transport}  {config.where()}")
            print(f"    state: {health.state}  {health.detail}")
            failed += health.state != "running"
            tools = [t for t in connection.tools if config.allows(t.name)]
            names = assign_action_names((config.name, t.name) for t in tools)
            for tool in tools:
                role = config.required_role(tool.name)
                need = f"  (role: {role.value})" if role else ""
                if config.needs_approval(tool.name):
                    need += f"  (approval: {config.approver_for(tool.name).value})"
                first = (tool.description or "").strip().splitlines()
                print(f"    {names[(config.name, tool.name)]}: {first[0] if first else ''}{need}")
        return 1 if failed else 0
    finally:
        for connection in connections:
            await connection.aclose()


async def _serve(host: PluginHost, settings: McpSettings, args: argparse.Namespace) -> int:
    from carrier.runtime import open_agents
    from carrier_plugin_mcp.server import build_agent_server

    if args.http:
        if settings.host not in _LOOPBACK:
            raise ConfigurationError(
                f"carrier mcp serve --http binds loopback only; CARRIER_MCP_HOST is "
                f"{settings.host!r}. Put a proxy with TLS in front to reach it from elsewhere."
            )
        if not settings.user_tokens:
            raise ConfigurationError(
                "carrier mcp serve --http needs CARRIER_MCP_USER_TOKENS, a JSON object "
                '{"token": {"user": "alice", "role": "member"}}; each request acts as the '
                "user of its bearer token."
            )
    port = settings.port if args.port is None else args.port
    async with open_agents(host, [args.character]) as (runtime, *_):
        if not args.http:
            server = build_agent_server(runtime, settings)
            await server.run_stdio_async()
            return 0
        url = f"http://{settings.host}:{port}/mcp"
        server = build_agent_server(runtime, settings, http_url=url)
        print(f"Serving {runtime.character.name} over MCP at {url}", file=sys.stderr)
        await server.run_streamable_http_async(
            host=settings.host, port=port, stateless_http=True, json_response=True
        )
    return 0
