"""Carrier plugin: a Telegram client. Entry point ``telegram``.

Registers the ``telegram`` client (run by ``carrier start`` for each agent with a bot
token), the ``carrier telegram`` command (``approve CODE``, ``pending``), the
``telegram`` settings namespace, and the should-respond decision for Telegram messages.
Only hook implementations live here: python-telegram-bot loads when the client runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import Client, Command
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, Participant, RespondDecision, Room

__all__: list[str] = []


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``telegram`` namespace (``CARRIER_TELEGRAM_*``)."""
    settings.add("telegram", "carrier_plugin_telegram.settings:TelegramSettings")


@carrier.hookimpl
def carrier_register_clients(clients: Registry[Client]) -> None:
    clients.add(
        "telegram",
        build_client,
        description="Telegram bots (long polling), one per CARRIER_TELEGRAM_TOKEN.",
    )


def build_client() -> Client:
    """A ``TelegramClient``, imported when ``carrier start`` runs."""
    from carrier_plugin_telegram.client import TelegramClient

    return TelegramClient()


@carrier.hookimpl
def carrier_register_commands(commands: Registry[Command]) -> None:
    commands.add(
        "telegram",
        build_command,
        description="Telegram: approve a direct-message pairing code, list waiting codes.",
    )


def build_command() -> Command:
    """The ``telegram`` command, imported only when it runs."""
    from carrier_plugin_telegram.commands import TelegramCommand

    return TelegramCommand()


@carrier.hookimpl(tryfirst=True)
def carrier_choose_should_respond(
    runtime: AgentRuntime, message: Memory, room: Room, participant: Participant | None
) -> RespondDecision | None:
    """For Telegram messages, the client's decision (made from Telegram's data: a
    mention, a reply to the bot, the group policy) stands; a muted room is never
    answered. Other sources are left to the other plugins."""
    from carrier.types import ParticipantState, RespondDecision

    found = message.metadata.get("telegram")
    if message.content.source != "telegram" or not isinstance(found, dict):
        return None
    if participant is not None and participant.state is ParticipantState.MUTED:
        return RespondDecision.IGNORE
    return RespondDecision.RESPOND if found.get("respond") else RespondDecision.IGNORE
