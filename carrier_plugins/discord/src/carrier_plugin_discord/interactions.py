"""Slash commands: ``/ask`` and ``/forget``, registered per guild, answered from
``INTERACTION_CREATE`` through the interaction callback; and the buttons.

Each interaction is handled once: its id is claimed in plugin state first, so a
replayed ``INTERACTION_CREATE`` (after a gateway RESUME) is ignored.

``/ask question [private]`` is a turn like a mention, with the contract of a message:
its id comes from the interaction's, it is journaled before the deferred response
("thinking…") and answered on its channel's lane, and the answer goes through the
outbox as follow-ups of the interaction (ephemeral when ``private``), so a crash between
the answer and its delivery sends it once at the next start. A public ``/ask`` is said
in the channel's room, which everyone there shares (as a mention would be); a private
one goes to the asker's own direct room of that channel (``discord:{bot}:{channel}:
private:{user}``), so no one else's prompt ever holds it.

``/forget`` asks for confirmation with two buttons (only the user who asked sees them);
"Forget" deletes that user's memories in that channel (its room and their private room)
through the kernel's :func:`carrier.forgetting.forget`. The Approve and Reject buttons
of an approval's notice are :mod:`.approval_buttons`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from carrier.forgetting import forget
from carrier_plugin_discord import approval_buttons, convert
from carrier_plugin_discord.sdk import discord
from carrier_plugin_discord.sending import followup_target

if TYPE_CHECKING:
    from carrier_plugin_discord.service import BotService

__all__ = ["COMMANDS", "handle_interaction", "register_commands"]

logger = logging.getLogger("carrier_plugin_discord")

#: The application commands registered in each guild.
COMMANDS: list[dict[str, Any]] = [
    {
        "name": "ask",
        "type": 1,
        "description": "Ask the agent something.",
        "options": [
            {"name": "question", "description": "Your question.", "type": 3, "required": True},
            {
                "name": "private",
                "description": "Only you see the answer.",
                "type": 5,
                "required": False,
            },
        ],
    },
    {
        "name": "forget",
        "type": 1,
        "description": "Make the agent forget what you said in this channel.",
    },
]

_FORGET = "carrier-forget"


async def register_commands(service: BotService, guild_ids: list[int]) -> None:
    """``PUT /applications/{id}/guilds/{guild}/commands`` for each guild."""
    application = service.client.application_id
    if application is None:
        return
    for guild in guild_ids:
        try:
            await service.http.bulk_upsert_guild_commands(application, guild, COMMANDS)
        except discord.HTTPException as exc:
            logger.warning("Discord: could not register commands in guild %s: %s", guild, exc)


async def handle_interaction(service: BotService, interaction: discord.Interaction) -> None:
    """Answer ``/ask``, ``/forget``, the ``/forget`` buttons and the approval buttons,
    each interaction once; ignore the rest."""
    data: dict[str, Any] = dict(interaction.data or {})
    if not await service.claim(interaction.id):
        logger.info("Discord: interaction %s was handled already", interaction.id)
        return
    if interaction.type is discord.InteractionType.application_command:
        if data.get("name") == "ask":
            await _ask(service, interaction, data)
        elif data.get("name") == "forget":
            await _confirm_forget(service, interaction)
    elif interaction.type is discord.InteractionType.component:
        custom_id = str(data.get("custom_id", ""))
        if custom_id.startswith(f"{_FORGET}:"):
            await _forget(service, interaction, custom_id)
        elif custom_id.startswith(f"{approval_buttons.PREFIX}:"):
            await approval_buttons.handle_approval_button(service, interaction, custom_id)


def _options(data: dict[str, Any]) -> dict[str, Any]:
    return {o["name"]: o.get("value") for o in data.get("options") or []}


async def _refused(service: BotService, interaction: discord.Interaction) -> bool:
    """Whether the user may not use the agent here (answered ephemerally if so)."""
    channel = interaction.channel
    if interaction.guild_id is None:
        allowed = await service.may_write(interaction.user, interaction.channel_id or 0)
        why = "I only talk to people my owner approved."
    else:
        served, listen = service.channel_access(channel)
        allowed = served and not listen
        why = "I don't answer in this channel."
    if not allowed:
        await interaction.response.send_message(why, ephemeral=True)
    return not allowed


async def _ask(service: BotService, interaction: discord.Interaction, data: dict[str, Any]) -> None:
    if await _refused(service, interaction):
        return
    options = _options(data)
    private = bool(options.get("private"))
    channel = interaction.channel or discord.Object(interaction.channel_id or 0)
    incoming = service.incoming(
        text=str(options.get("question") or ""),
        author=(interaction.user.id, interaction.user.name),
        channel=channel,
        guild=interaction.guild,
        message_id=convert.message_id(service.bot_id, channel.id, interaction.id),
        respond=True,
        role=service.role(interaction.user, interaction.guild),
        extra={"interaction_id": interaction.id},
        alone=private and interaction.guild is not None,
    )
    incoming.metadata["mentions"] = [service.runtime.agent_id]
    item = await service.journal(
        incoming,
        channel_id=channel.id,
        followup=followup_target(interaction, ephemeral=private),
    )
    try:
        await interaction.response.defer(ephemeral=private, thinking=True)
    except discord.HTTPException:
        await service.unjournal(item)  # too late: Discord takes no answer to it
        raise
    service.answer_later(item)


async def _confirm_forget(service: BotService, interaction: discord.Interaction) -> None:
    if await _refused(service, interaction):
        return
    view = approval_buttons.button_view(
        ("Forget", discord.ButtonStyle.danger, f"{_FORGET}:yes:{interaction.user.id}"),
        ("Cancel", discord.ButtonStyle.secondary, f"{_FORGET}:no:{interaction.user.id}"),
    )
    await interaction.response.send_message(
        "Forget everything you said to me in this channel? This cannot be undone.",
        view=view,
        ephemeral=True,
    )


async def _forget(service: BotService, interaction: discord.Interaction, custom_id: str) -> None:
    _, choice, owner = custom_id.split(":", 2)
    if owner != str(interaction.user.id):
        await interaction.response.send_message("That button is not yours.", ephemeral=True)
        return
    if choice != "yes":
        await interaction.response.edit_message(content="Nothing was forgotten.", view=None)
        return
    channel = interaction.channel_id or 0
    count = 0
    for room in (
        convert.room_id(service.bot_id, channel),
        convert.private_room_id(service.bot_id, channel, interaction.user.id),
    ):
        count += await forget(
            service.runtime.store,
            agent_id=service.runtime.agent_id,
            entity_id=convert.user_id(interaction.user.id),
            room_id=room,
        )
    await interaction.response.edit_message(
        content=f"Done: I forgot {count} message(s) and notes from you in this channel.",
        view=None,
    )
