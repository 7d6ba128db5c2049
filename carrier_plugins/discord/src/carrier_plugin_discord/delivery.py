"""What a bot sends, through the outbox: ``Delivery``, a base of ``BotService``.

``answer`` puts a turn's reply in the outbox (texts, files, the approval buttons) and
adds the reactions the agent chose; the delivery loop puts what the agent sends to this
bot's rooms from anywhere (``runtime.send_message``, a worker) in the outbox once, keyed
by the delivery, and sends it in the background (``spawn``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from carrier.types import EventType
from carrier_plugin_discord import convert
from carrier_plugin_discord.actions import REACT_KEY
from carrier_plugin_discord.chunks import split_text
from carrier_plugin_discord.sdk import discord
from carrier_plugin_discord.sending import bodies_for

if TYPE_CHECKING:
    from carrier.outbox import Deliveries
    from carrier.runtime import AgentRuntime
    from carrier.types import Event, Reply
    from carrier_plugin_discord.sending import Sender
    from carrier_plugin_discord.settings import DiscordSettings

__all__ = ["Delivery"]

logger = logging.getLogger("carrier_plugin_discord")


class Delivery:
    """Sends answers and the agent's messages; ``BotService`` wires the parts it uses."""

    runtime: AgentRuntime
    http: discord.http.HTTPClient
    settings: DiscordSettings
    sender: Sender
    bot_id: int
    _background: set[asyncio.Task[None]]
    _deliveries: Deliveries
    _sent: asyncio.Event
    _delivery_loop: asyncio.Task[None] | None

    # ---- a turn's answer --------------------------------------------------------------

    async def answer(
        self,
        reply: Reply,
        channel_id: int,
        *,
        reply_to: int | None,
        ref: str | None = None,
        followup: dict[str, Any] | None = None,
    ) -> None:
        """Send ``reply``'s texts and files to the channel (or as follow-ups of the
        interaction ``followup`` names, which always get an answer), then add its
        reactions. The notice that an action waits for approval gets the Approve and
        Reject buttons."""
        pieces: list[str] = []
        notices: dict[int, str] = {}  # the last piece of each notice: its approval's id
        for response in reply.responses:
            if response.content.text:
                pieces.extend(split_text(response.content.text))
                approval = (response.content.model_extra or {}).get("approval_id")
                if isinstance(approval, str):
                    notices[len(pieces) - 1] = approval
        files = [
            (attachment.title or "attachment.txt", attachment.text.encode())
            for response in reply.responses
            for attachment in response.content.attachments
            if attachment.text is not None
        ]
        links = [
            attachment.url
            for response in reply.responses
            for attachment in response.content.attachments
            if attachment.text is None and attachment.url
        ]
        if links:
            pieces.extend(split_text("\n".join(links)))
        if followup is not None and not pieces and not files:
            failed = reply.error is not None
            pieces = ["Sorry, I failed." if failed else "I have nothing to say to that."]
        bodies = bodies_for(channel_id, pieces, reply_to=reply_to, files=files, followup=followup)
        for index, approval in notices.items():
            bodies[index]["approval_id"] = approval
        await self.sender.send(_chat(channel_id, followup), bodies, ref=ref)
        for result in reply.action_results:
            wanted = result.data.get(REACT_KEY) if result.success else None
            if isinstance(wanted, dict) and wanted.get("message_id"):
                await self._react(wanted)

    async def refused(
        self,
        error: str,
        channel_id: int,
        *,
        reply_to: int | None,
        ref: str | None = None,
        followup: dict[str, Any] | None = None,
    ) -> None:
        """Tell the sender why their message was refused (``InputError``: too long, a
        character no store can keep), where its answer would have gone."""
        bodies = bodies_for(channel_id, split_text(error), reply_to=reply_to, followup=followup)
        await self.sender.send(_chat(channel_id, followup), bodies, ref=ref)

    async def _react(self, wanted: dict[str, Any]) -> None:
        try:
            await self.http.add_reaction(
                int(wanted["channel_id"]), int(wanted["message_id"]), str(wanted["emoji"])
            )
        except discord.HTTPException as exc:
            logger.warning("Discord: could not add reaction %s: %s", wanted.get("emoji"), exc)

    # ---- SEND_MESSAGE to other rooms ------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Wake the delivery loop when this agent sent a message (``runtime.send_message``
        in this process; one sent by a worker is found by the loop's next poll)."""
        if event.type is EventType.MESSAGE_SENT and event.agent_id == self.runtime.agent_id:
            self._sent.set()

    def deliver_soon(self) -> None:
        """Wake the delivery loop (a decided approval's continuation is waiting)."""
        self._sent.set()

    def start_deliveries(self) -> None:
        """Deliver what the agent sends to this bot's rooms: at once when woken, else
        every ``delivery_poll_s``."""

        self._delivery_loop = self._deliveries.serve(
            self.deliver_sent, self._sent, self.settings.delivery_poll_s
        )

    async def deliver_sent(self) -> int:
        """Put each message the agent sent to this bot's rooms into the outbox (once: the
        delivery's key is the outbox ``ref``) and send it; how many were taken."""
        taken = await self._deliveries.pending()
        for delivery in taken:
            channel = convert.channel_of(delivery.room_id, self.bot_id)
            if channel is not None and not await self.sender.outbox.recorded(delivery.key):
                memory = await self.runtime.store.get_memory(delivery.memory_id)
                if memory is not None and memory.content.text:
                    bodies = bodies_for(channel, split_text(memory.content.text), reply_to=None)
                    items = await self.sender.record(str(channel), bodies, ref=delivery.key)
                    # in the background: one channel's rate limit must not hold the others
                    self.spawn(self.sender.deliver(items))
            elif convert.is_private_room(delivery.room_id, self.bot_id):
                # nothing but an interaction's follow-ups reaches a private /ask room
                logger.info("Discord: %s is a private room; not delivered", delivery.room_id)
            elif channel is None:
                logger.warning("Discord: %s is not a room of this bot", delivery.room_id)
            await self._deliveries.done(delivery)
        return len(taken)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background (drained at shutdown)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("Discord: background work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _chat(channel_id: int, followup: dict[str, Any] | None) -> str:
    """The outbox's chat of an answer: its channel, or the interaction it follows up."""
    return str(channel_id) if followup is None else f"interaction:{followup['interaction_id']}"
