"""One bot serving one agent: each Discord message becomes a turn, each answer messages.

Messages are handled per channel in order (channels concurrently). A message's id comes
from Discord's, so a duplicate ``MESSAGE_CREATE`` (a gateway replay after RESUME) is
recognised by the kernel and never answered twice. A message that needs an answer is
journaled in plugin state (``inbox:{message id}``) before its turn and cleared once the
answer is in the outbox; an entry a crash left is handled again at the next start (the
kernel returns the stored answer if there is one; the outbox's ``ref`` keeps it from
being sent twice). ``/ask`` follows the same contract (:mod:`.interactions`): journaled
by the interaction's id, answered on its channel's lane, its answer put in the outbox
as follow-ups of the interaction. Reactions are stored as events the agent sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carrier.lanes import Lanes
from carrier.outbox import Deliveries
from carrier.pairing import PairingBook
from carrier.types import Attachment, EventType, IncomingMessage, Role, RoomType
from carrier_plugin_discord import convert
from carrier_plugin_discord.actions import REACT_KEY
from carrier_plugin_discord.chunks import split_text
from carrier_plugin_discord.sdk import discord
from carrier_plugin_discord.sending import bodies_for, expired, typing

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Event, Reply
    from carrier_plugin_discord.sending import Sender
    from carrier_plugin_discord.settings import DiscordSettings

__all__ = ["BotService"]

logger = logging.getLogger("carrier_plugin_discord")

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml")
_THREAD_TYPES = (
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
)


#: Journal entries of messages accepted but not answered are kept this long.
JOURNAL_TTL_S = 24 * 3600.0
#: An interaction id is remembered this long, so a replayed ``INTERACTION_CREATE`` is
#: ignored (Discord takes no answer to an interaction after 15 minutes anyway).
INTERACTION_CLAIM_TTL_S = 3600.0


@dataclass(frozen=True, slots=True)
class Journaled:
    """A message journaled for an answer: a ``/ask``, or one an earlier run left.

    ``entry`` holds the ``incoming`` message (JSON), its ``channel_id``, and where the
    answer goes: ``reply_to`` (a channel message) or ``followup`` (an interaction's, see
    :func:`~carrier_plugin_discord.sending.followup_target`)."""

    key: str
    entry: dict[str, Any]


class BotService:
    """Turns one bot's events into turns of one agent, and answers back.

    Args:
        runtime: The agent.
        client: The logged-in discord.py client.
        settings: The agent's Discord settings.
        sender: Delivers through the outbox.
    """

    def __init__(
        self,
        runtime: AgentRuntime,
        client: discord.Client,
        settings: DiscordSettings,
        sender: Sender,
    ) -> None:
        assert client.user is not None
        self.runtime = runtime
        self.client = client
        self.http = client.http
        self.settings = settings
        self.sender = sender
        self.bot_id = client.user.id
        self._state = runtime.plugin_state("discord")
        self.pairing = PairingBook(self._state)
        self._owners = set(settings.owners)
        self._names = [n for n in (runtime.character.name, runtime.character.username) if n]
        self.lanes = Lanes(self._process, label="Discord")
        self._background: set[asyncio.Task[None]] = set()
        self._deliveries = Deliveries(runtime.store, "discord", runtime.agent_id)
        self._sent = asyncio.Event()
        self._delivery_loop: asyncio.Task[None] | None = None
        self.closing = False

    # ---- intake -------------------------------------------------------------------

    def on_message(self, message: discord.Message) -> None:
        """discord.py's ``on_message``: queue the message on its channel's lane."""
        if self.closing or message.author.bot or message.webhook_id is not None:
            return  # other bots, our own messages and webhooks never start a turn
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        self.lanes.submit(str(message.channel.id), message)

    def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """discord.py's ``on_raw_reaction_add``: the agent sees the reaction."""
        if self.closing or payload.user_id == self.bot_id:
            return
        if payload.member is not None and payload.member.bot:
            return
        self.lanes.submit(str(payload.channel_id), payload)

    async def _process(
        self, item: discord.Message | discord.RawReactionActionEvent | Journaled
    ) -> None:
        if isinstance(item, discord.Message):
            await self._turn(item)
        elif isinstance(item, Journaled):
            await self._answer_journaled(item)
        else:
            await self._reaction(item)

    def channel_access(self, channel: object) -> tuple[bool, bool]:
        """For a guild channel: (served at all, listen-only)."""
        own = getattr(channel, "id", None)
        parent = convert.parent_channel(channel)
        ids = {i for i in (own, parent) if i is not None}
        allowed = not self.settings.allowed_channels or bool(
            ids & set(self.settings.allowed_channels)
        )
        return allowed, bool(ids & set(self.settings.listen_channels))

    def incoming(
        self,
        *,
        text: str,
        author: tuple[int, str],
        channel: Any,
        guild: discord.Guild | None,
        message_id: str,
        respond: bool,
        role: Role,
        extra: dict[str, Any] | None = None,
        alone: bool = False,
        **fields: Any,
    ) -> IncomingMessage:
        """The ``IncomingMessage`` for something ``author`` (id, name) did in ``channel``;
        ``alone``: in the author's private room of that channel (a private ``/ask``)."""
        private = guild is None or alone
        thread = getattr(channel, "type", None) in _THREAD_TYPES
        return IncomingMessage(
            text=text,
            user_id=convert.user_id(author[0]),
            user_name=author[1],
            room_id=(
                convert.private_room_id(self.bot_id, channel.id, author[0])
                if alone
                else convert.room_id(self.bot_id, channel.id)
            ),
            room_type=RoomType.DIRECT if private else RoomType.THREAD if thread else RoomType.GROUP,
            source="discord",
            world_id=None if guild is None else convert.world_id(self.bot_id, guild.id),
            message_id=message_id,
            role=role,
            metadata={
                "discord": {
                    "respond": respond,
                    "channel_id": channel.id,
                    "guild_id": None if guild is None else guild.id,
                    **(extra or {}),
                },
            },
            **fields,
        )

    async def _turn(self, message: discord.Message) -> None:
        author = message.author
        guild = message.guild
        private = guild is None
        listen = False
        if not private:
            allowed, listen = self.channel_access(message.channel)
            if not allowed:
                logger.info("Discord: channel %s is not allowed", message.channel.id)
                return
        elif not await self.may_write(author, message.channel.id):
            return
        addressed = private or convert.addressed(message, bot_id=self.bot_id, names=self._names)
        respond = (addressed or self.settings.guild_policy == "all") and not listen
        reference = message.reference
        incoming = self.incoming(
            text=self._readable(message.content),
            author=(author.id, author.name),
            channel=message.channel,
            guild=guild,
            message_id=convert.message_id(self.bot_id, message.channel.id, message.id),
            respond=respond,
            role=self.role(author, guild),
            extra={"message_id": message.id},
            in_reply_to=(
                convert.message_id(self.bot_id, message.channel.id, reference.message_id)
                if reference is not None and reference.message_id is not None
                else None
            ),
            attachments=await self._attachments(message),
        )
        if addressed:
            incoming.metadata["mentions"] = [self.runtime.agent_id]
        if not respond:
            await self.runtime.handle(incoming)
            return
        item = await self.journal(incoming, channel_id=message.channel.id, reply_to=message.id)
        if await self._respond(incoming, item.entry):
            await self._state.delete(item.key)

    async def journal(self, incoming: IncomingMessage, **where: Any) -> Journaled:
        """Record that ``incoming`` needs an answer, sent ``where`` says (``channel_id``,
        and ``reply_to`` or ``followup``), before its turn: a crash leaves the entry for
        the next start."""
        entry = {"incoming": incoming.model_dump(mode="json"), **where}
        item = Journaled(f"inbox:{incoming.message_id}", entry)
        await self._state.set(item.key, entry, ttl_s=JOURNAL_TTL_S)
        return item

    async def unjournal(self, item: Journaled) -> None:
        """Drop a journal entry whose message will not be answered."""
        await self._state.delete(item.key)

    async def claim(self, interaction_id: int) -> bool:
        """Whether this is the first time ``INTERACTION_CREATE`` brings this interaction
        (a gateway replay brings it again: it is answered once)."""
        key = f"interaction:{interaction_id}"
        return await self._state.add(key, True, ttl_s=INTERACTION_CLAIM_TTL_S)

    async def _respond(self, incoming: IncomingMessage, entry: dict[str, Any]) -> bool:
        """Handle a message that needs an answer and put the answer in the outbox; whether
        its journal entry may go (``False``: the agent failed; the next start retries)."""
        channel_id = int(entry["channel_id"])
        target: dict[str, Any] | None = entry.get("followup")
        if target is None:
            async with typing(self.http, channel_id, interval_s=self.settings.typing_interval_s):
                reply = await self.runtime.handle(incoming)
            if reply.error is not None:
                return False
        elif expired(target):
            logger.warning(
                "Discord: %s was not answered within the 15 minutes its interaction token "
                "lives (dropped)",
                incoming.message_id,
            )
            return True
        else:  # the deferred interaction shows "thinking…"; a failure is answered too
            reply = await self.runtime.handle(incoming)
        if reply.in_progress:
            return True
        ref = incoming.message_id
        if reply.duplicate and ref is not None and await self.sender.outbox.recorded(ref):
            return True  # a replayed event: its answer is in the outbox already
        reply_to = entry.get("reply_to")
        await self.answer(
            reply,
            channel_id,
            reply_to=None if reply_to is None else int(reply_to),
            ref=ref,
            followup=target,
        )
        return True

    async def recover_journal(self) -> int:
        """Queue the messages an earlier run accepted but did not answer."""
        entries = await self._state.items("inbox:")
        for key, entry in entries:
            self.answer_later(Journaled(key, entry))
        if entries:
            logger.warning("Discord: finishing %d message(s) a previous run left", len(entries))
        return len(entries)

    def answer_later(self, item: Journaled) -> None:
        """Queue a journaled message on its channel's lane."""
        self.lanes.submit(str(item.entry["channel_id"]), item)

    async def _answer_journaled(self, item: Journaled) -> None:
        incoming = IncomingMessage.model_validate(item.entry["incoming"])
        if await self._respond(incoming, item.entry):
            await self._state.delete(item.key)

    def _readable(self, text: str) -> str:
        """The text with the bot's mention written as the agent's name."""
        name = f"@{self.runtime.character.name}"
        return text.replace(f"<@{self.bot_id}>", name).replace(f"<@!{self.bot_id}>", name)

    async def _reaction(self, payload: discord.RawReactionActionEvent) -> None:
        guild = self.client.get_guild(payload.guild_id) if payload.guild_id else None
        channel = (
            guild.get_channel_or_thread(payload.channel_id) if guild is not None else None
        ) or discord.Object(payload.channel_id)
        if guild is not None:
            allowed, _ = self.channel_access(channel)
            if not allowed:
                return
        user = payload.member or self.client.get_user(payload.user_id)
        if guild is None and not await self._approved(payload.user_id):
            return
        target = convert.message_id(self.bot_id, payload.channel_id, payload.message_id)
        emoji = str(payload.emoji)
        incoming = self.incoming(
            text=f"[reacted {emoji} to a message]",
            author=(payload.user_id, user.name if user is not None else str(payload.user_id)),
            channel=channel,
            guild=guild,
            message_id=f"{target}:reaction:{payload.user_id}:{emoji}",
            respond=False,
            role=(
                self.role(user, guild)
                if user is not None and guild is not None
                else self._base_role(payload.user_id)
            ),
            extra={"reaction": {"emoji": emoji, "message_id": payload.message_id}},
            in_reply_to=target,
        )
        await self.runtime.handle(incoming)

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
        chat = str(channel_id) if followup is None else f"interaction:{followup['interaction_id']}"
        await self.sender.send(chat, bodies, ref=ref)
        for result in reply.action_results:
            wanted = result.data.get(REACT_KEY) if result.success else None
            if isinstance(wanted, dict) and wanted.get("message_id"):
                await self._react(wanted)

    async def _react(self, wanted: dict[str, Any]) -> None:
        try:
            await self.http.add_reaction(
                int(wanted["channel_id"]), int(wanted["message_id"]), str(wanted["emoji"])
            )
        except discord.HTTPException as exc:
            logger.warning("Discord: could not add reaction %s: %s", wanted.get("emoji"), exc)

    # ---- access and roles -------------------------------------------------------------

    async def _approved(self, user: int) -> bool:
        policy = self.settings.dm_policy
        if user in self._owners or policy == "open" or user in self.settings.allowed_users:
            return True
        return policy == "pairing" and await self.pairing.approved(user)

    async def may_write(self, author: discord.abc.User, channel_id: int) -> bool:
        """Whether a direct message from ``author`` is handled; under ``pairing`` an
        unknown user is given a code (once) to pass to an owner."""
        if await self._approved(author.id):
            return True
        if self.settings.dm_policy != "pairing":
            return False
        code = await self.pairing.request(author.id, author.name)
        if code is not None:
            logger.warning(
                "Discord: %s (%s) asks to talk to %s; approve with: carrier discord approve %s",
                author.name,
                author.id,
                self.runtime.character.name,
                code,
            )
            text = (
                f"Hi! I only talk to people my owner approved. Your pairing code is {code}. "
                f"Ask my owner to run: carrier discord approve {code}"
            )
            await self.sender.send(str(channel_id), bodies_for(channel_id, [text], reply_to=None))
        return False

    def _base_role(self, user: int) -> Role:
        return Role.OWNER if user in self._owners else Role.MEMBER

    def role(self, author: discord.abc.User, guild: discord.Guild | None) -> Role:
        """OWNER for configured owners (everywhere); ADMIN for members with the
        Administrator permission or a configured admin role, in their guild only."""
        if author.id in self._owners:
            return Role.OWNER
        if guild is None or not isinstance(author, discord.Member) or author.guild != guild:
            return Role.MEMBER
        if author.guild_permissions.administrator:
            return Role.ADMIN
        admin_roles = set(self.settings.admin_roles)
        if any(r.id in admin_roles and r.guild.id == guild.id for r in author.roles):
            return Role.ADMIN
        return Role.MEMBER

    # ---- attachments ------------------------------------------------------------------

    async def _attachments(self, message: discord.Message) -> list[Attachment]:
        found = []
        for item in message.attachments:
            attachment = Attachment(
                id=f"discord-attachment:{item.id}",
                url=item.url,
                title=item.filename,
                source="discord",
                content_type=item.content_type,
                size=item.size,
            )
            attachment.text = await self._inline_text(item)
            found.append(attachment)
        return found

    async def _inline_text(self, item: discord.Attachment) -> str | None:
        limit = self.settings.attachment_text_bytes
        mime = item.content_type or ""
        if not mime.startswith(_TEXT_TYPES) or item.size > limit:
            return None
        try:
            data = await item.read()
        except discord.HTTPException as exc:
            logger.warning("Discord: could not download %s: %s", item.filename, exc)
            return None
        return data[:limit].decode("utf-8", errors="replace")

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

        async def loop() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sent.wait(), self.settings.delivery_poll_s)
                self._sent.clear()
                try:
                    await self.deliver_sent()
                except Exception:
                    logger.exception("Discord: delivering sent messages failed; retrying")

        self._delivery_loop = asyncio.get_running_loop().create_task(loop())

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

    async def drain(self, timeout_s: float) -> None:
        """Stop intake and let turns and deliveries in flight finish (up to ``timeout_s``)."""
        self.closing = True
        await self.lanes.drain(timeout_s)
        if self._delivery_loop is not None:
            self._delivery_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery_loop
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)
