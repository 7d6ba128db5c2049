"""Carrier plugin: durable execution across worker processes. Entry point ``workers``.

Registers the ``workers`` executor (``CARRIER_EXECUTOR=workers``: clients enqueue
each message as a procrastinate job locked to its room) and the ``carrier worker``
command (processes that take the jobs). Only hook implementations live here;
procrastinate and psycopg load when a queue opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import Executor
    from carrier.registry import Registry
    from carrier_plugin_workers.settings import WorkersSettings


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    settings.add("workers", "carrier_plugin_workers.settings:WorkersSettings")


@carrier.hookimpl
def carrier_register_executors(executors: Registry[Executor]) -> None:
    executors.add(
        "workers",
        build_executor,
        settings="workers",
        description="Enqueue messages for `carrier worker` processes on PostgreSQL "
        "(procrastinate): one at a time per room, in order, surviving crashes.",
    )


@carrier.hookimpl
def carrier_register_commands(commands: Registry[carrier.Command]) -> None:
    commands.add(
        "worker",
        build_worker_command,
        description="Handle queued messages: run as many as you like, on any machine.",
    )


def build_executor(settings: WorkersSettings) -> Executor:
    """The ``workers`` executor; it connects on the first message."""
    from carrier_plugin_workers.executor import WorkersExecutor

    return WorkersExecutor(settings)


def build_worker_command() -> carrier.Command:
    """The ``worker`` command, imported only when it runs."""
    from carrier_plugin_workers.commands import WorkerCommand

    return WorkerCommand()
