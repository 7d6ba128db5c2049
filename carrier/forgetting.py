"""Forgetting what one user said in one room or everywhere (``/forget`` in chat
clients, ``carrier forget``, ``DELETE /agents/{agent}/memories``).

:func:`forget` deletes the memories whose entity is the user in that room (or in every
room) — their messages and what was learned about them there (facts, reflections) —
and the agent's stored answers to those messages. Nothing of other users, other rooms,
or the agent's own knowledge is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore

__all__ = ["forget"]

_BATCH = 200


async def forget(store: MemoryStore, *, agent_id: str, entity_id: str, room_id: str | None) -> int:
    """Delete ``entity_id``'s memories in ``room_id`` and the agent's answers to them.

    Args:
        store: The agent's store.
        agent_id: The agent whose memory it is.
        entity_id: The user who asked to be forgotten.
        room_id: The room whose memories go; the user's memories elsewhere stay.
            ``None``: every room's.

    Returns:
        How many memories were deleted.
    """
    deleted = 0
    while True:
        batch = await store.get_memories(
            agent_id=agent_id, room_id=room_id, entity_id=entity_id, limit=_BATCH
        )
        batch = [
            m
            for m in batch
            if m.entity_id == entity_id and (room_id is None or m.room_id == room_id)
        ]
        if not batch:
            return deleted
        for memory in batch:
            if await store.delete_memory(memory.id):
                deleted += 1
            for suffix in ("", "-1", "-2", "-3"):  # the answers (an answer may be several)
                answer = await store.get_memory(f"{memory.id}-{agent_id}{suffix}")
                if answer is not None and answer.room_id == memory.room_id:
                    deleted += int(await store.delete_memory(answer.id))
