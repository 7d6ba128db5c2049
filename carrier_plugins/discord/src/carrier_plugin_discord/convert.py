"""Pure mapping between Discord's snowflakes and Carrier's ids, and who a message is for.

Ids carry the bot's user id, because two bots in one channel see the same messages and
each agent stores its own copy: ``discord:{bot}:{channel}`` is a room (a thread or
forum post is a channel of its own), ``discord:{bot}:guild:{guild}`` the world (the
guild), ``discord:{bot}:{channel}:{message}`` a message, ``discord:{user}`` a user, and
``discord:{bot}:{channel}:private:{user}`` the direct room of one user's private
``/ask`` questions in a channel (only that user sees them, so no one else's prompt does).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import discord

__all__ = [
    "addressed",
    "channel_of",
    "is_private_room",
    "message_id",
    "parent_channel",
    "private_room_id",
    "room_id",
    "user_id",
    "world_id",
]

PREFIX = "discord"


def room_id(bot_id: int, channel_id: int) -> str:
    """The room of a channel, thread, forum post or DM channel."""
    return f"{PREFIX}:{bot_id}:{channel_id}"


def private_room_id(bot_id: int, channel_id: int, discord_user_id: int) -> str:
    """The room of one user's private ``/ask`` questions in a channel: a direct room,
    which no message can be delivered to outside an interaction (:func:`channel_of`
    gives ``None``)."""
    return f"{PREFIX}:{bot_id}:{channel_id}:private:{discord_user_id}"


def world_id(bot_id: int, guild_id: int) -> str:
    """The world of a guild (its channels and threads are rooms of it)."""
    return f"{PREFIX}:{bot_id}:guild:{guild_id}"


def message_id(bot_id: int, channel_id: int, discord_message_id: int) -> str:
    """The stable id of a Discord message: a replayed event has the same one."""
    return f"{PREFIX}:{bot_id}:{channel_id}:{discord_message_id}"


def user_id(discord_user_id: int) -> str:
    """The entity id of a Discord user (the same for every bot)."""
    return f"{PREFIX}:{discord_user_id}"


def channel_of(room: str, bot_id: int) -> int | None:
    """The channel of a room of this bot, or ``None`` for any other room."""
    parts = room.split(":")
    if len(parts) != 3 or parts[0] != PREFIX or parts[1] != str(bot_id):
        return None
    return int(parts[2]) if parts[2].isdigit() else None


def is_private_room(room: str, bot_id: int) -> bool:
    """Whether ``room`` is one of this bot's private ``/ask`` rooms."""
    parts = room.split(":")
    return len(parts) == 5 and parts[:2] == [PREFIX, str(bot_id)] and parts[3] == "private"


def parent_channel(channel: object) -> int | None:
    """The channel a thread or forum post belongs to, else the channel's own id."""
    parent = getattr(channel, "parent_id", None)
    if isinstance(parent, int):
        return parent
    own = getattr(channel, "id", None)
    return own if isinstance(own, int) else None


def addressed(message: discord.Message, *, bot_id: int, names: list[str]) -> bool:
    """Whether a guild message is for the bot: an @mention of it (among others too),
    a reply to one of its messages, or one of the agent's ``names`` as a word. An
    ``@everyone`` or role mention does not count."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    author = getattr(resolved, "author", None)
    if author is not None and author.id == bot_id:
        return True
    wanted = [n for n in names if n]
    if not wanted:
        return False
    pattern = "|".join(re.escape(n) for n in sorted(wanted, key=len, reverse=True))
    return re.search(rf"(?<![\w@])(?:{pattern})(?!\w)", message.content, re.IGNORECASE) is not None
