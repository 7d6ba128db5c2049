"""The caller's rooms with an agent (``GET /agents/{agent_id}/rooms``), each with a
readable title and the time it was last active, newest first.

A room's title is the start of the caller's own first message there (never another
user's words), shortened to :data:`TITLE_CHARS`. It is worked out once per user and room
from at most :data:`TITLE_WINDOW` of the user's messages there (the oldest of them), and
the plugin's state (``runtime.plugin_state("http")``) remembers which message it was:
its id only, so the user's words are kept nowhere but in that message, and a forgotten
message (``carrier forget``, the forget endpoints) takes its title with it. A request
then costs, per room, a few reads by key and index (the title key, the message by id,
the room's newest message), never a read of the room's history.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from carrier.types import MemoryType

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_http.hub import AgentHub

__all__ = ["TITLE_CHARS", "TITLE_WINDOW", "list_rooms", "shorten"]

#: The longest title (characters, "…" included).
TITLE_CHARS = 60
#: How many of the user's messages in a room are read, once, to find their first one.
TITLE_WINDOW = 50
_NAMESPACE = "http"


def shorten(text: str, limit: int = TITLE_CHARS) -> str | None:
    """``text`` on one line, cut at a word to at most ``limit`` characters (with "…");
    ``None`` for a text of white space only."""
    words = " ".join(text.split())
    if not words:
        return None
    if len(words) <= limit:
        return words
    cut = words[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def _title_key(user_id: str, room_id: str) -> str:
    # quoted, so no user and room pair shares a key with another (ids may hold ':')
    return f"room-title:{quote(user_id, safe='')}:{quote(room_id, safe='')}"


async def list_rooms(runtime: AgentRuntime, hub: AgentHub, user_id: str) -> list[dict[str, Any]]:
    """``user_id``'s rooms with the agent (reserved rooms left out): ``id``, ``title``
    and ``lastActiveAt``, the most recently active first (rooms without messages last)."""
    store = runtime.store
    room_ids = [r for r in await store.get_rooms_for_entity(user_id) if not hub.is_reserved_room(r)]
    found = await asyncio.gather(*(_room(runtime, user_id, r) for r in room_ids))
    rooms = [room for room in found if room is not None]
    rooms.sort(key=lambda r: r["id"], reverse=True)
    rooms.sort(key=lambda r: r["lastActiveAt"] or 0.0, reverse=True)  # stable: ids break ties
    return rooms


async def _room(runtime: AgentRuntime, user_id: str, room_id: str) -> dict[str, Any] | None:
    store = runtime.store
    if await store.get_participant(room_id, runtime.agent_id) is None:
        return None  # a room with other agents only
    newest = await store.get_memories(
        agent_id=runtime.agent_id, room_id=room_id, type=MemoryType.MESSAGE, limit=1
    )
    return {
        "id": room_id,
        "title": await _title(runtime, user_id, room_id),
        "lastActiveAt": newest[-1].created_at if newest else None,
    }


async def _title(runtime: AgentRuntime, user_id: str, room_id: str) -> str | None:
    """The start of the user's first message in the room, or ``None`` if they wrote none."""
    store = runtime.store
    state = runtime.plugin_state(_NAMESPACE)
    key = _title_key(user_id, room_id)
    remembered = await state.get(key)
    if isinstance(remembered, str):
        memory = await store.get_memory(remembered)
        if memory is not None and memory.entity_id == user_id and memory.room_id == room_id:
            return shorten(memory.content.text)
    own = await store.get_memories(
        agent_id=runtime.agent_id,
        room_id=room_id,
        entity_id=user_id,
        type=MemoryType.MESSAGE,
        limit=TITLE_WINDOW,
    )
    for memory in own:  # oldest first
        title = shorten(memory.content.text)
        if memory.entity_id == user_id and memory.room_id == room_id and title is not None:
            await state.set(key, memory.id)
            return title
    return None
