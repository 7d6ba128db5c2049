"""Approve and Reject buttons on the notice that an action waits for approval.

When the model chooses an action that requires approval, the kernel stores a pending
approval and the notice is the message's reply (docs/approvals.md). The notice's content
carries ``approval_id``; the client sends it with two buttons whose ``custom_id`` is
``carrier-approval:{approve|reject}:{approval id}``.

A press (``INTERACTION_CREATE`` of the component type) decides the approval with the
role the plugin computes from Discord's own data about the presser, as for messages:
the Administrator permission or a configured admin role in *that* guild makes them
ADMIN, ``CARRIER_DISCORD_OWNERS`` OWNER, anyone else is MEMBER. The custom id only
names the approval; it grants nothing. A platform role holds in its room only, so the
approval must belong to the channel the button was pressed in, unless the presser is an
OWNER (as for a chat reply, ``Approvals.from_message``).

The decision comes first (``Approvals.decide`` without resuming: one compare-and-set,
so of two presses one wins), then the interaction is answered within Discord's three
seconds: the notice is updated to show the decision, without its buttons; a refusal is
an ephemeral message and the approval stays pending. Then the run resumes, once
(``Approvals.resume``: the action's outcome is recorded and never run again), and the
model's continuation, a new agent message, is delivered like anything the agent sends
to the room (the kernel's deliveries). A resume cut off by a crash is finished at the
next start (``recover_at_start``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from carrier.approvals import Approval, ApprovalStatus
from carrier.errors import AccessError, ActionError, InputError
from carrier.types import Role
from carrier_plugin_discord import convert
from carrier_plugin_discord.chunks import split_text
from carrier_plugin_discord.sdk import discord

if TYPE_CHECKING:
    from carrier_plugin_discord.service import BotService

__all__ = ["PREFIX", "approval_view", "handle_approval_button"]

logger = logging.getLogger("carrier_plugin_discord")

#: The start of the buttons' custom ids.
PREFIX = "carrier-approval"

_VERBS = {"approve": "Approved", "reject": "Rejected"}


def button_view(*buttons: tuple[str, discord.ButtonStyle, str]) -> discord.ui.View:
    """A row of buttons, each ``(label, style, custom_id)``, whose presses the client
    answers itself (from ``INTERACTION_CREATE``), not discord.py's view store."""
    view = discord.ui.View(timeout=None)
    for label, style, custom_id in buttons:
        view.add_item(discord.ui.Button(label=label, style=style, custom_id=custom_id))
    view.stop()
    return view


def approval_view(approval_id: str) -> discord.ui.View:
    """The Approve and Reject buttons of one approval's notice."""
    return button_view(
        ("Approve", discord.ButtonStyle.success, f"{PREFIX}:approve:{approval_id}"),
        ("Reject", discord.ButtonStyle.danger, f"{PREFIX}:reject:{approval_id}"),
    )


async def handle_approval_button(
    service: BotService, interaction: discord.Interaction, custom_id: str
) -> None:
    """Decide the approval a button names as the presser, if their role allows."""
    verb, _, approval_id = custom_id.removeprefix(f"{PREFIX}:").partition(":")
    if verb not in _VERBS:
        return
    approvals = service.runtime.approvals
    user = interaction.user
    role = service.role(user, interaction.guild)
    channel = interaction.channel_id or 0
    here = {
        convert.room_id(service.bot_id, channel),
        convert.private_room_id(service.bot_id, channel, user.id),
    }
    approval = await approvals.get(approval_id)
    if approval is None or (approval.room_id not in here and role is not Role.OWNER):
        await _refuse(interaction, "There is no such approval here.")
        return
    try:
        decided = await approvals.decide(
            approval_id,
            approve=verb == "approve",
            by=convert.user_id(user.id),
            role=role,
            resume=False,
            via=convert.message_id(service.bot_id, channel, interaction.id),
        )
    except AccessError:
        logger.info(
            "Discord: %s (%s, %s) may not %s approval %s",
            user.name,
            user.id,
            role,
            verb,
            approval_id,
        )
        await _refuse(
            interaction,
            f"You may not {verb} this: it needs the {approval.approver_role} role. "
            "It is still waiting.",
        )
        return
    except (ActionError, InputError) as exc:  # decided already, or expired
        await _refuse(interaction, str(exc))
        await _resume(service, interaction, approval_id)  # an expiry's default, if due
        return
    notice = interaction.message.content if interaction.message is not None else ""
    outcome = f"**{_VERBS[verb]}** by {user.name}."
    await interaction.response.edit_message(
        content=f"{notice}\n{outcome}" if notice else outcome,
        view=None,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    logger.info("Discord: approval %s %s by %s (%s)", decided.id, decided.status, user.id, role)
    await _resume(service, interaction, decided.id)


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(
        text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
    )


async def _resume(service: BotService, interaction: discord.Interaction, approval_id: str) -> None:
    """Resume a decided approval's run (once: the kernel's lease and ``done`` flag), then
    deliver what the agent said after it."""
    approvals = service.runtime.approvals
    current = await approvals.get(approval_id)
    if current is None or current.status is ApprovalStatus.PENDING or current.done:
        return
    await approvals.resume(current)
    if convert.is_private_room(current.room_id, service.bot_id):
        await _answer_privately(service, interaction, current)
    else:
        service.deliver_soon()


async def _answer_privately(
    service: BotService, interaction: discord.Interaction, approval: Approval
) -> None:
    """A private ``/ask`` room is no channel: only the presser (its user, who alone sees
    its buttons) gets the continuation, as an ephemeral follow-up of the press."""
    said = await service.runtime.store.get_memory(approval.response_id)
    if said is None or not said.content.text or interaction.application_id is None:
        return
    ref = approval.response_id
    if await service.sender.outbox.recorded(ref):
        return
    from carrier_plugin_discord.sending import bodies_for, followup_target  # imports this

    target = followup_target(interaction, ephemeral=True)
    pieces = split_text(said.content.text)
    bodies = bodies_for(interaction.channel_id or 0, pieces, reply_to=None, followup=target)
    await service.sender.send(f"interaction:{interaction.id}", bodies, ref=ref)
