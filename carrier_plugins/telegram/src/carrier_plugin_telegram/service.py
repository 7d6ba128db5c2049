"""One bot serving one agent: each Telegram update becomes a turn, each answer messages.

Updates are journaled in plugin state (``inbox:{message id}``) as they arrive, handled
per chat in order (chats concurrently), and the journal entry is cleared once the answer
is in the outbox (or the message needs none). A journal entry left by a crash is handled
again at the next start: the kernel recognises the message (its id comes from Telegram's
ids) and returns the stored answer instead of answering twice, which is then delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from telegram import Update
from telegram.error import TelegramError

from carrier.errors import InputError
from carrier.lanes import Lanes
from carrier.outbox import Deliveries
from carrier.types import Attachment, EventType, IncomingMessage, Role, RoomType
from carrier_plugin_telegram import convert
from carrier_plugin_telegram.access import PairingBook
from carrier_plugin_telegram.chunks import split_text
from carrier_plugin_telegram.sending import bodies_for, typing

if TYPE_CHECKING:
    from telegram import Bot, Message

    from carrier.runtime import AgentRuntime
    from carrier.types import Event
    from carrier_plugin_telegram.sending import Sender
    from carrier_plugin_telegram.settings import TelegramSettings

__all__ = ["BotService"]

logger = logging.getLogger("carrier_plugin_telegram")

JOURNAL_TTL_S = 24 * 3600.0
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml")


class BotService:
    """Turns one bot's updates into turns of one agent, and answers back.

    Args:
        runtime: The agent.
        bot: The initialized bot (``getMe`` done).
        settings: The agent's Telegram settings.
        sender: Delivers through the outbox.
    """

    def __init__(
        self, runtime: AgentRuntime, bot: Bot, settings: TelegramSettings, sender: Sender
    ) -> None:
        self.runtime = runtime
        self.bot = bot
        self.settings = settings
        self.sender = sender
        self.bot_id = bot.id
        self.username = bot.username
        self._state = runtime.plugin_state("telegram")
        self.pairing = PairingBook(self._state)
        self._owners = set(settings.owners)
        self._admins: dict[int, tuple[float, frozenset[int]]] = {}
        self._names = [n for n in (runtime.character.name, runtime.character.username) if n]
        self.lanes = Lanes(self._process, label="Telegram")
        self._background: set[asyncio.Task[None]] = set()
        self._deliveries = Deliveries(runtime.store, "telegram", runtime.agent_id)
        self._sent = asyncio.Event()
        self._delivery_loop: asyncio.Task[None] | None = None

    # ---- intake -------------------------------------------------------------------

    async def on_update(self, update: object, _context: object = None) -> None:
        """PTB's handler: journal the update and queue it on its chat's lane."""
        if not isinstance(update, Update) or update.message is None:
            return  # edits, channel posts, callbacks: not conversation
        message = update.message
        key = convert.message_id(self.bot_id, message.chat.id, message.message_id)
        await self._state.set(f"inbox:{key}", update.to_dict(), ttl_s=JOURNAL_TTL_S)
        self.lanes.submit(str(message.chat.id), (update, False))

    async def recover_journal(self) -> int:
        """Queue the updates an earlier run journaled but did not finish."""
        entries = await self._state.items("inbox:")
        for _, data in entries:
            update = Update.de_json(data, self.bot)
            if update is not None and update.message is not None:
                self.lanes.submit(str(update.message.chat.id), (update, True))
        if entries:
            logger.warning("Telegram: finishing %d update(s) a previous run left", len(entries))
        return len(entries)

    async def _process(self, item: tuple[Update, bool]) -> None:
        update, recovered = item
        message = update.message
        assert message is not None
        key = convert.message_id(self.bot_id, message.chat.id, message.message_id)
        if await self._turn(message, key, recovered=recovered):
            await self._state.delete(f"inbox:{key}")

    async def _turn(self, message: Message, key: str, *, recovered: bool) -> bool:
        """Handle one message; whether its journal entry may go (``False``: the agent
        failed, so the next start tries again)."""
        user = message.from_user
        chat = message.chat
        if user is None or user.is_bot:
            return True  # other bots (and our own echoes) never start a turn
        private = chat.type == chat.PRIVATE
        if chat.type not in (chat.PRIVATE, chat.GROUP, chat.SUPERGROUP):
            return True
        if (
            not private
            and self.settings.allowed_chats
            and chat.id not in self.settings.allowed_chats
        ):
            logger.info("Telegram: chat %s is not in CARRIER_TELEGRAM_ALLOWED_CHATS", chat.id)
            return True
        address = convert.ChatAddress(chat.id, convert.thread_of(message))
        if private and not await self._may_write(user.id, user.full_name, address):
            return True
        addressed = private or convert.addressed(
            message, bot_id=self.bot_id, bot_username=self.username, names=self._names
        )
        respond = addressed or self.settings.group_policy == "all"
        role = (
            await self._role(user.id, chat.id, private=private)
            if respond
            else self._base_role(user.id)
        )
        incoming = IncomingMessage(
            text=message.text or message.caption or "",
            user_id=convert.user_id(user.id),
            user_name=user.username or user.full_name,
            room_id=convert.room_id(self.bot_id, chat.id, address.thread_id),
            room_type=RoomType.DIRECT if private else RoomType.GROUP,
            source="telegram",
            world_id=convert.world_id(self.bot_id, chat.id),
            message_id=key,
            in_reply_to=(
                convert.message_id(self.bot_id, chat.id, message.reply_to_message.message_id)
                if message.reply_to_message
                else None
            ),
            attachments=await self._attachments(message),
            role=role,
            metadata={
                "telegram": {
                    "respond": respond,
                    "chat_id": chat.id,
                    "message_id": message.message_id,
                },
                **({"mentions": [self.runtime.agent_id]} if addressed else {}),
            },
        )
        try:
            if respond:
                async with typing(self.bot, address, interval_s=self.settings.typing_interval_s):
                    reply = await self.runtime.handle(incoming)
            else:
                reply = await self.runtime.handle(incoming)
        except InputError as exc:  # refused, nothing stored: the sender is told why
            logger.info("Telegram: message %s refused: %s", key, exc)
            if respond:
                await self._answer([str(exc)], address, message.message_id, ref=key)
            return True
        if reply.error is not None or reply.in_progress:
            return reply.error is None
        if reply.duplicate and not recovered:
            return True  # a redelivery: answered (and delivered) before
        if recovered and await self.sender.outbox.recorded(key):
            return True  # the crash came after the answer was recorded: it is sent from there
        await self._answer(reply.texts, address, message.message_id, ref=key)
        return True

    async def _answer(
        self, texts: list[str], address: convert.ChatAddress, reply_to: int, *, ref: str
    ) -> None:
        pieces = [piece for text in texts for piece in split_text(text)]
        bodies = bodies_for(address, pieces, reply_to=reply_to)
        await self.sender.send(address.chat, bodies, ref=ref)

    # ---- access and roles -------------------------------------------------------------

    async def _may_write(self, user: int, name: str, address: convert.ChatAddress) -> bool:
        """Whether a direct message from ``user`` is handled; under ``pairing`` an unknown
        user is given a code (once) to pass to an owner."""
        policy = self.settings.dm_policy
        if user in self._owners or policy == "open" or user in self.settings.allowed_users:
            return True
        if policy == "allowlist":
            return False
        if await self.pairing.approved(user):
            return True
        code = await self.pairing.request(user, name)
        if code is not None:
            logger.warning(
                "Telegram: %s (%s) asks to talk to %s; approve with: carrier telegram approve %s",
                name,
                user,
                self.runtime.character.name,
                code,
            )
            text = (
                f"Hi! I only talk to people my owner approved. Your pairing code is {code}. "
                f"Ask my owner to run: carrier telegram approve {code}"
            )
            await self.sender.send(address.chat, bodies_for(address, [text], reply_to=None))
        return False

    def _base_role(self, user: int) -> Role:
        return Role.OWNER if user in self._owners else Role.MEMBER

    async def _role(self, user: int, chat: int, *, private: bool) -> Role:
        """OWNER for configured owners (everywhere); ADMIN for a group's administrators
        in that group only; MEMBER otherwise (also when Telegram cannot be asked)."""
        if user in self._owners:
            return Role.OWNER
        if private:
            return Role.MEMBER
        return Role.ADMIN if user in await self._administrators(chat) else Role.MEMBER

    async def _administrators(self, chat: int) -> frozenset[int]:
        cached = self._admins.get(chat)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            members = await self.bot.get_chat_administrators(chat)
        except TelegramError as exc:
            logger.warning("Telegram: could not read the admins of chat %s: %s", chat, exc)
            return frozenset()
        admins = frozenset(m.user.id for m in members)
        self._admins[chat] = (now + self.settings.admin_cache_s, admins)
        return admins

    # ---- attachments ------------------------------------------------------------------

    async def _attachments(self, message: Message) -> list[Attachment]:
        found: list[Attachment] = []
        if message.photo:
            photo = message.photo[-1]  # the largest size
            found.append(
                _attachment(photo.file_id, "photo", "image/jpeg", photo.file_size, kind="photo")
            )
        if message.document is not None:
            document = message.document
            attachment = _attachment(
                document.file_id,
                document.file_name or "document",
                document.mime_type,
                document.file_size,
                kind="document",
            )
            attachment.text = await self._inline_text(
                document.file_id, document.mime_type, document.file_size
            )
            found.append(attachment)
        for kind, media in (
            ("voice", message.voice),
            ("audio", message.audio),
            ("video", message.video),
        ):
            if media is not None:
                found.append(
                    _attachment(media.file_id, kind, media.mime_type, media.file_size, kind=kind)
                )
        return found

    async def _inline_text(self, file_id: str, mime: str | None, size: int | None) -> str | None:
        limit = self.settings.attachment_text_bytes
        if not mime or not mime.startswith(_TEXT_TYPES) or size is None or size > limit:
            return None
        try:
            file = await self.bot.get_file(file_id)
            data = await file.download_as_bytearray()
        except TelegramError as exc:
            logger.warning("Telegram: could not download a document: %s", exc)
            return None
        return bytes(data[:limit]).decode("utf-8", errors="replace")

    # ---- SEND_MESSAGE to other rooms ------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Wake the delivery loop when this agent sent a message (``runtime.send_message``
        in this process; one sent by a worker is found by the loop's next poll)."""
        if event.type is EventType.MESSAGE_SENT and event.agent_id == self.runtime.agent_id:
            self._sent.set()

    def start_deliveries(self) -> None:
        """Start delivering what the agent sends to this bot's rooms (:meth:`deliver_sent`
        at once when woken, else every ``delivery_poll_s``)."""

        self._delivery_loop = self._deliveries.serve(
            self.deliver_sent, self._sent, self.settings.delivery_poll_s
        )

    async def deliver_sent(self) -> int:
        """Put each message the agent sent to this bot's rooms into the outbox (once:
        the delivery's key is the outbox ``ref``) and send it; how many were taken."""
        taken = await self._deliveries.pending()
        for delivery in taken:
            address = convert.address_of(delivery.room_id, self.bot_id)
            if address is not None and not await self.sender.outbox.recorded(delivery.key):
                memory = await self.runtime.store.get_memory(delivery.memory_id)
                if memory is not None and memory.content.text:
                    bodies = bodies_for(address, split_text(memory.content.text), reply_to=None)
                    items = await self.sender.record(address.chat, bodies, ref=delivery.key)
                    # sent in the background: a chat's flood wait must not hold the others
                    task = asyncio.get_running_loop().create_task(self.sender.deliver(items))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            elif address is None:
                logger.warning("Telegram: %s is not a room of this bot", delivery.room_id)
            await self._deliveries.done(delivery)
        return len(taken)

    async def drain(self, timeout_s: float) -> None:
        """Let turns and deliveries in flight finish (up to ``timeout_s``)."""
        await self.lanes.drain(timeout_s)
        if self._delivery_loop is not None:
            self._delivery_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery_loop
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)


def _attachment(
    file_id: str, title: str, mime: str | None, size: int | None, *, kind: str
) -> Attachment:
    # No URL: Telegram's file URLs contain the bot token.
    return Attachment(
        id=f"telegram-file:{file_id}",
        title=title,
        source="telegram",
        content_type=mime,
        size=size,
        telegram_file_id=file_id,
        telegram_kind=kind,
    )
