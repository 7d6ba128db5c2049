"""Carrier plugin: HTTP API and web chat page. Entry point ``http``.

Adds the ``carrier serve`` command and the ``http`` settings namespace. Only hook
implementations live here; FastAPI, uvicorn and the settings class load when the
command runs, so ``carrier --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.registry import Registry
    from carrier_plugin_http.settings import HttpSettings


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    settings.add("http", "carrier_plugin_http.settings:HttpSettings")


@carrier.hookimpl
def carrier_register_commands(commands: Registry[carrier.Command]) -> None:
    commands.add(
        "serve",
        build_serve_command,
        description="Serve agents over HTTP: the ElizaOS-compatible API and a chat page.",
    )


@carrier.hookimpl
def carrier_register_clients(clients: Registry[carrier.Client]) -> None:
    clients.add(
        "http",
        build_http_client,
        settings="http",
        description="The HTTP API for 'carrier start' (CARRIER_HTTP_START=true).",
    )


def build_http_client(settings: HttpSettings) -> carrier.Client:
    """The HTTP API as a client, imported only when ``carrier start`` runs."""
    from carrier_plugin_http.client import HttpClient

    return HttpClient(settings)


def build_serve_command() -> carrier.Command:
    """The ``serve`` command, imported only when it runs."""
    from carrier_plugin_http.commands import ServeCommand

    return ServeCommand()
