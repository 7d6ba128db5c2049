"""Carrier plugin: a Discord client. Entry point ``discord``.

Registers the ``discord`` client (run by ``carrier start`` for each agent with a bot
token), the ``REACT`` action, the ``carrier discord`` command (``approve CODE``,
``pending``), the ``discord`` settings namespace, and the should-respond decision for
Discord messages. Only hook implementations live here: discord.py loads when the
client runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import Action, Client, Command
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, Participant, RespondDecision, Room

__all__: list[str] = []


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``discord`` namespace (``CARRIER_DISCORD_*``)."""
    settings.add("discord", "carrier_plugin_discord.settings:DiscordSettings")


@carrier.hookimpl
def carrier_register_clients(clients: Registry[Client]) -> None:
    clients.add(
        "discord",
        build_client,
        description="Discord bots (gateway), one per CARRIER_DISCORD_TOKEN.",
    )


def build_client() -> Client:
    """A ``DiscordClient``, imported when ``carrier start`` runs."""
    from carrier_plugin_discord.client import DiscordClient

    return DiscordClient()


@carrier.hookimpl
def carrier_register_actions(actions: Registry[Action]) -> None:
    actions.add("REACT", build_react, description="Add an emoji reaction on Discord.")


def build_react() -> Action:
    """The ``REACT`` action (no discord.py import: the client applies its result)."""
    from carrier_plugin_discord.actions import ReactAction

    return ReactAction()


@carrier.hookimpl
def carrier_register_commands(commands: Registry[Command]) -> None:
    commands.add(
        "discord",
        build_command,
        description="Discord: approve a direct-message pairing code, list waiting codes.",
    )


def build_command() -> Command:
    """The ``discord`` command, imported only when it runs."""
    from carrier_plugin_discord.commands import DiscordCommand

    return DiscordCommand()


@carrier.hookimpl(tryfirst=True)
def carrier_choose_should_respond(
    runtime: AgentRuntime, message: Memory, room: Room, participant: Participant | None
) -> RespondDecision | None:
    """For Discord messages the client's decision (a mention, a reply to the bot, the
    channel policy) stands; a muted room is never answered."""
    from carrier.types import ParticipantState, RespondDecision

    found = message.metadata.get("discord")
    if message.content.source != "discord" or not isinstance(found, dict):
        return None
    if participant is not None and participant.state is ParticipantState.MUTED:
        return RespondDecision.IGNORE
    return RespondDecision.RESPOND if found.get("respond") else RespondDecision.IGNORE
