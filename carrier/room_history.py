"""Each room's history turns, built once: a long window costs what its new messages do.

A room's history is the same from one message to the next but for the newest
exchange (and, once in a while, a dropped block). :class:`RoomHistories` keeps, per
room, the turns the last request sent with their token costs, and the ids and texts
they were built from; the next request reuses the longest run that is unchanged — the
same ids with the same texts, in the same order, at any offset (older messages may
have left the fetched history) — and builds only the rest. A memory edited since
(another text under the same id), another speaker name or a flag that changes how
turns read rebuilds the window (from the :class:`~carrier.prompts.TurnCache`, so still
cheap). Bounded by bytes like the turn cache: the least recently used rooms go first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carrier.types import ChatMessage, Memory

__all__ = ["ROOM_TURN_OVERHEAD", "BuiltHistory", "RoomHistories"]

#: What one remembered turn holds beyond its text, in bytes (its id string, the slots
#: in four lists; the turn itself is shared with the turn cache).
ROOM_TURN_OVERHEAD = 200


@dataclass(slots=True)
class BuiltHistory:
    """One room's history as the last request sent it: the memory ``ids[i]`` with
    the text ``texts[i]`` became ``turns[i]``, costing ``costs[i]`` tokens. It holds
    no memory, so the store's cache alone decides which memories stay loaded."""

    key: Hashable
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
        """The turns of ``memories`` (oldest first, each with text), reusing what the
        room's last build with the same ``key`` (what else shapes a turn: speaker
        names, flags) already made; ``turn`` builds one."""
        ids = [m.id for m in memories]
        texts = [m.content.text or "" for m in memories]
        last = self._rooms.pop(room_id, None)
        if last is not None:
            self.bytes -= last.bytes
        done, offset = _unchanged(last, key, ids, texts)
        turns = last.turns[offset : offset + done] if last is not None and done else []
        costs = last.costs[offset : offset + done] if last is not None and done else []
        for memory in memories[done:]:
            message, cost = turn(memory)
            turns.append(message)
            costs.append(cost)
        self.reused += done
        self.built += len(memories) - done
        built = BuiltHistory(key, ids, texts, turns, costs)
        built.bytes = ROOM_TURN_OVERHEAD * len(ids) + sum(map(len, texts))
        if built.bytes <= self.max_bytes:
            self._rooms[room_id] = built
            self.bytes += built.bytes
            while self.bytes > self.max_bytes:
                oldest = self._rooms.pop(next(iter(self._rooms)))
                self.bytes -= oldest.bytes
        return built


def _unchanged(
    last: BuiltHistory | None, key: Hashable, ids: list[str], texts: list[str]
) -> tuple[int, int]:
    """How many of ``ids`` (from the first) ``last`` built unchanged, and where they
    start in it."""
    if last is None or not ids or last.key != key:
        return 0, 0
    try:
        offset = last.ids.index(ids[0])
    except ValueError:
        return 0, 0
    count = min(len(last.ids) - offset, len(ids))
    end = offset + count
    if last.ids[offset:end] == ids[:count] and last.texts[offset:end] == texts[:count]:
        return count, offset
    return 0, 0
