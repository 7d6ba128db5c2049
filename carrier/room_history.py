"""Each room's history turns, built once: a long window costs what its new messages do.

A room's history is the same from one message to the next but for the newest
exchange (and, once in a while, a dropped block). :class:`RoomHistories` keeps, per
room, the turns the last request sent with their token costs, and what they were
built from; the next request reuses the longest run that is unchanged, at any offset
(older messages may have left the fetched history), and builds only the rest.

Unchanged means the same memory objects, compared by identity: the store's reads
return shared, read-only memories (:class:`~carrier.stores.MemoryStore`), so a room
whose history stays in the store's cache is checked without reading a single memory,
whatever its length. When the objects differ (a store without a cache, an evicted
window) the ids and texts are compared instead. A memory edited since (a new object,
another text), another speaker name or a flag that changes how turns read rebuilds the
window (from the :class:`~carrier.prompts.TurnCache`, so still cheap). Bounded by
bytes like the turn cache: the least recently used rooms go first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carrier.types import ChatMessage, Memory

__all__ = ["ROOM_TURN_OVERHEAD", "BuiltHistory", "RoomHistories"]

#: What one remembered turn holds beyond its text, in bytes (its id string, the slots
#: in five lists; the turn is shared with the turn cache, the memory with the store's).
ROOM_TURN_OVERHEAD = 200


@dataclass(slots=True)
class BuiltHistory:
    """One room's history as the last request sent it. ``memories`` is what it was
    built from (shared, read-only objects, text-less ones included); the memory
    ``ids[i]`` with the text ``texts[i]`` became ``turns[i]``, costing ``costs[i]``
    tokens. ``complete``: every memory had a text, so the lists line up with
    ``memories``."""

    key: Hashable
    memories: list[Memory]
    complete: bool
    ids: list[str]
    texts: list[str]
    turns: list[ChatMessage]
    costs: list[int]
    bytes: int = 0


class RoomHistories:
    """The built history of up to ``max_bytes`` (estimated) worth of rooms."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.reused = 0
        self.built = 0
        self._rooms: dict[str, BuiltHistory] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def build(
        self,
        room_id: str,
        key: Hashable,
        memories: Sequence[Memory],
        turn: Callable[[Memory], tuple[ChatMessage, int]],
    ) -> BuiltHistory:
        """The turns of the ``memories`` with text (oldest first), reusing what the
        room's last build with the same ``key`` (what else shapes a turn: speaker
        names, flags) already made; ``turn`` builds one."""
        last = self._rooms.pop(room_id, None)
        done = offset = 0
        if last is not None:
            self.bytes -= last.bytes
            if last.key == key and last.complete and memories:
                done, offset = _same_objects(last.memories, memories)
                if not done:
                    done, offset = _same_texts(last, memories)
        if last is not None and done:
            end = offset + done
            ids, texts = last.ids[offset:end], last.texts[offset:end]
            turns, costs = last.turns[offset:end], last.costs[offset:end]
        else:
            ids, texts, turns, costs = [], [], [], []
        complete = True
        for memory in memories[done:]:
            text = memory.content.text
            if not text:
                complete = False
                continue
            message, cost = turn(memory)
            ids.append(memory.id)
            texts.append(text)
            turns.append(message)
            costs.append(cost)
        self.reused += done
        self.built += len(memories) - done
        built = BuiltHistory(key, list(memories), complete, ids, texts, turns, costs)
        built.bytes = ROOM_TURN_OVERHEAD * len(memories) + sum(map(len, texts))
        if built.bytes <= self.max_bytes:
            self._rooms[room_id] = built
            self.bytes += built.bytes
            while self.bytes > self.max_bytes:
                oldest = self._rooms.pop(next(iter(self._rooms)))
                self.bytes -= oldest.bytes
        return built


def _same_objects(last: list[Memory], memories: Sequence[Memory]) -> tuple[int, int]:
    """How many of ``memories`` (from the first) are ``last``'s own objects, in order,
    and where they start in it (pointers compared; no memory is read)."""
    first = memories[0]
    offset = next((i for i, m in enumerate(last) if m is first), -1)
    if offset < 0:
        return 0, 0
    count = min(len(last) - offset, len(memories))
    if all(map(operator.is_, last[offset : offset + count], memories[:count])):
        return count, offset
    return 0, 0


def _same_texts(last: BuiltHistory, memories: Sequence[Memory]) -> tuple[int, int]:
    """How many of ``memories`` (from the first) ``last`` built with the same ids and
    texts, and where they start in it."""
    try:
        offset = last.ids.index(memories[0].id)
    except ValueError:
        return 0, 0
    count = min(len(last.ids) - offset, len(memories))
    end = offset + count
    ids = [m.id for m in memories[:count]]
    texts = [m.content.text or "" for m in memories[:count]]
    if last.ids[offset:end] == ids and last.texts[offset:end] == texts:
        return count, offset
    return 0, 0
