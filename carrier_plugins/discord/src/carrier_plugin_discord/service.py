"""One bot serving one agent: each Discord message becomes a turn, each answer messages.

Messages are handled per channel in order (channels concurrently). A message's id comes
from Discord's, so a duplicate ``MESSAGE_CREATE`` (a gateway replay after RESUME) is
recognised by the kernel and never answered twice. A message that needs an answer is
journaled before its turn and answered through the outbox (:mod:`.journal`), so a crash
neither loses nor repeats it; ``/ask`` follows the same contract (:mod:`.interactions`).
Answers, and what the agent sends to the bot's rooms, go out through the outbox
(:mod:`.delivery`). Reactions are stored as events the agent sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from carrier.errors import InputError
from carrier.lanes import Lanes
from carrier.outbox import Deliveries
from carrier.pairing import PairingBook
from carrier.types import Attachment, IncomingMessage, Role, RoomType
from carrier_plugin_discord import convert
from carrier_plugin_discord.journal import Journal, Journaled
from carrier_plugin_discord.sdk import discord
from carrier_plugin_discord.sending import bodies_for

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
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


class BotService(Journal):
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
            try:
                await self.runtime.handle(incoming)
            except InputError as exc:  # not addressed to the agent: nobody is told
                logger.info("Discord: message %s refused: %s", incoming.message_id, exc)
            return
        item = await self.journal(incoming, channel_id=message.channel.id, reply_to=message.id)
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

    # ---- shutdown ---------------------------------------------------------------------

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
