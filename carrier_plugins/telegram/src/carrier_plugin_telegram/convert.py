"""Pure mapping between Telegram's ids and Carrier's: rooms, users, messages, mentions.

Ids carry the bot's id, because Telegram's message ids are per chat and two bots in one
group see the same ones: ``telegram:{bot}:{chat}`` is a room (``:{topic}`` appended for
a forum topic), ``telegram:{bot}:{chat}:{message}`` a message, ``telegram:{user}`` a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram import MessageEntity

if TYPE_CHECKING:
    from telegram import Message

__all__ = ["ChatAddress", "addressed", "message_id", "room_id", "user_id"]

PREFIX = "telegram"


@dataclass(frozen=True, slots=True)
class ChatAddress:
    """Where a room's messages go: a chat, and a forum topic in it."""

    chat_id: int
    thread_id: int | None = None

    @property
    def chat(self) -> str:
        """The outbox's chat key (one send queue per chat)."""
        return str(self.chat_id)


def room_id(bot_id: int, chat_id: int, thread_id: int | None = None) -> str:
    """The room of a chat, or of a forum topic in it."""
    base = f"{PREFIX}:{bot_id}:{chat_id}"
    return base if thread_id is None else f"{base}:{thread_id}"


def world_id(bot_id: int, chat_id: int) -> str:
    """The world of a chat (its topics are rooms of it)."""
    return f"{PREFIX}:{bot_id}:{chat_id}"


def message_id(bot_id: int, chat_id: int, telegram_message_id: int) -> str:
    """The stable id of a Telegram message: a redelivery has the same one."""
    return f"{PREFIX}:{bot_id}:{chat_id}:{telegram_message_id}"


def user_id(telegram_user_id: int) -> str:
    """The entity id of a Telegram user (the same for every bot)."""
    return f"{PREFIX}:{telegram_user_id}"


def address_of(room: str, bot_id: int) -> ChatAddress | None:
    """The chat (and topic) of a room of this bot, or ``None`` for any other room."""
    parts = room.split(":")
    if len(parts) not in (3, 4) or parts[0] != PREFIX or parts[1] != str(bot_id):
        return None
    try:
        numbers = [int(p) for p in parts[2:]]
    except ValueError:
        return None
    return ChatAddress(numbers[0], numbers[1] if len(numbers) == 2 else None)


def thread_of(message: Message) -> int | None:
    """The forum topic a message belongs to (``None``: the chat itself, or General)."""
    if message.is_topic_message and message.message_thread_id is not None:
        return message.message_thread_id
    return None


def addressed(message: Message, *, bot_id: int, bot_username: str, names: list[str]) -> bool:
    """Whether a group message is for the bot: an @mention of it (among others too), a
    text mention of it, a command (``/x`` or ``/x@bot``), a reply to one of its
    messages, or one of the agent's ``names`` as a word."""
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == bot_id:
        return True
    handle = f"@{bot_username}".lower()
    for entity, text in {**message.parse_entities(), **message.parse_caption_entities()}.items():
        if entity.type == MessageEntity.MENTION and text.lower() == handle:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            target = text.partition("@")[2].lower()
            if not target or target == bot_username.lower():
                return True
    body = message.text or message.caption or ""
    wanted = [n for n in names if n]
    if not wanted:
        return False
    pattern = "|".join(re.escape(n) for n in sorted(wanted, key=len, reverse=True))
    return re.search(rf"(?<![\w@])(?:{pattern})(?!\w)", body, re.IGNORECASE) is not None
