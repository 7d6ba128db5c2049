"""Carrier plugin: MCP servers' tools as actions, agents served over MCP. Entry point ``mcp``.

Hook implementations and settings only; the SDK is imported inside the factories, so
discovering plugins stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier import ActionSource, Command, Provider, Registry, SettingsRegistry


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    settings.add("mcp", "carrier_plugin_mcp.settings:McpSettings")


@carrier.hookimpl
def carrier_register_action_sources(action_sources: Registry[ActionSource]) -> None:
    action_sources.add(
        "mcp", build_tools, description="Tools of the MCP servers in CARRIER_MCP_CONFIG."
    )


@carrier.hookimpl
def carrier_register_providers(providers: Registry[Provider]) -> None:
    providers.add(
        "mcp_resources",
        build_resources,
        description='Resources of MCP servers that opt in ("resources": true).',
    )


@carrier.hookimpl
def carrier_register_commands(commands: Registry[Command]) -> None:
    commands.add(
        "mcp",
        build_command,
        description="MCP: list the configured servers, or serve an agent over MCP.",
    )


def build_tools() -> ActionSource:
    from carrier_plugin_mcp.actions import McpTools  # the SDK loads here only

    return McpTools()


def build_resources() -> Provider:
    from carrier_plugin_mcp.actions import McpResources

    return McpResources()


def build_command() -> Command:
    from carrier_plugin_mcp.commands import McpCommand

    return McpCommand()
