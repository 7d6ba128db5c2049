"""Memories read back: rows as JSON, validated in batches, and a cache of memories.

Memories are never updated in place (only inserted and deleted) and ``seq`` is
never reused, so a memory read once can be kept by its ``seq`` and served again
without touching the table or validating it again: a query then reads only
``seq`` values from a covering index, fetches the rows it has not seen, and
validates them all in one call of pydantic's JSON validator. Cached memories are
shared by every caller (the MemoryStore protocol says to treat them as read-only).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError

from carrier.types import Content, Memory
from carrier_plugin_sql import vectors

__all__ = [
    "FROM",
    "MEMORY_COLUMNS",
    "MemoryCache",
    "Row",
    "complete",
    "memories_from_rows",
    "stored_row",
]

#: Columns of a memory as read by :func:`memories_from_rows`: ``seq``, the memory as a
#: JSON object up to its ``created_at`` value (built by SQLite from the stored JSON
#: documents), ``created_at`` (a float, formatted by Python to stay exact) and the
#: embedding blob (or NULL).
MEMORY_COLUMNS = (
    "m.seq, "
    """'{"id":' || json_quote(m.id) || ',"agent_id":' || json_quote(m.agent_id) """
    """|| ',"entity_id":' || json_quote(m.entity_id) || ',"room_id":' || json_quote(m.room_id) """
    """|| ',"world_id":' || json_quote(m.world_id) || ',"type":' || json_quote(m.type) """
    """|| ',"content":' || m.content || ',"unique":' """
    """|| CASE WHEN m.is_unique THEN 'true' ELSE 'false' END """
    """|| ',"scope":' || json_quote(m.scope) """
    """|| ',"metadata":' || m.meta || ',"embedding":null,"created_at":', """
    "m.created_at, e.vector"
)
#: The tables :data:`MEMORY_COLUMNS` reads.
FROM = "FROM memories AS m LEFT JOIN embeddings AS e ON e.memory_seq = m.seq"
_CREATED_AT_KEY = ',"created_at":'
#: Validates many memories in one call of pydantic's (Rust) JSON validator.
_MEMORY_LIST: TypeAdapter[list[Memory]] = TypeAdapter(list[Memory])


def complete(row: Sequence[Any]) -> Row:
    """A row of :data:`MEMORY_COLUMNS` with its JSON completed by ``created_at``
    (Python's ``repr`` of a float reads back exactly; SQLite's keeps 15 digits)."""
    return (row[0], f"{row[1]}{row[2]!r}}}", row[2], row[3])


def stored_row(seq: int, params: Sequence[Any], vector: bytes | None) -> Row:
    """The completed row a read of the memory just inserted with ``params`` (the
    values of ``ops.memory_params``) as ``seq`` would return."""
    id_, agent_id, entity_id, room_id, world_id, type_, content, created_at, unique = params[:9]
    text = (
        f'{{"id":{json.dumps(id_)},"agent_id":{json.dumps(agent_id)},'
        f'"entity_id":{json.dumps(entity_id)},"room_id":{json.dumps(room_id)},'
        f'"world_id":{json.dumps(world_id)},"type":{json.dumps(type_)},"content":{content},'
        f'"unique":{"true" if unique else "false"},"scope":{json.dumps(params[11])},'
        f'"metadata":{params[10]},'
        f'"embedding":null,"created_at":{created_at!r}}}'
    )
    return (seq, text, created_at, vector)


def memories_from_rows(rows: Sequence[Row]) -> list[Memory]:
    """``Memory`` objects from completed rows (:func:`complete`), validated as one
    JSON array (about half the cost of validating them one by one)."""
    if not rows:
        return []
    try:
        memories = _MEMORY_LIST.validate_json("[" + ",".join([row[1] for row in rows]) + "]")
    except ValidationError:
        # What JSON cannot carry exactly (an infinite created_at, NaN or a lone
        # surrogate in metadata): one by one, with Python's json module.
        memories = [_memory_from_row(row) for row in rows]
    for memory, row in zip(memories, rows, strict=True):
        if row[3] is not None:
            memory.embedding = vectors.decode(row[3])
    return memories


def _memory_from_row(row: Row) -> Memory:
    text = row[1]
    data = json.loads(text[: text.rindex(_CREATED_AT_KEY)] + "}")
    data["created_at"] = row[2]
    data["content"] = Content.model_validate(data["content"])
    return Memory.model_validate(data)


#: A completed row: ``(seq, the memory as JSON, created_at, embedding blob or None)``.
Row = tuple[int, str, float, "bytes | None"]


#: What a cached memory costs beyond its JSON text, in bytes: the ``Memory`` and
#: ``Content`` objects, their dicts and lists (measured with tracemalloc: about 2,700
#: bytes plus the text for a chat message).
ENTRY_OVERHEAD = 2700
#: The default budget of a store's memory cache (``CARRIER_SQL_MEMORY_CACHE_MB``).
DEFAULT_CACHE_BYTES = 128 * 1024 * 1024


def entry_bytes(row: Row) -> int:
    """The estimated memory one cached memory holds (validated or not)."""
    return ENTRY_OVERHEAD + len(row[1])


class MemoryCache:
    """Memories by ``seq``, validated once, the least recently used dropped first when
    the entries' estimated size passes ``max_bytes``.

    Bounded by bytes, not entries: the working set of many active rooms (each room's
    history window) stays in memory whatever the rooms' count, up to a budget the
    operator sets; a long text costs what it holds. A memory this connection stores is
    added as its row (:meth:`add`), as a read would return it, and validated when first
    read. Only the connection's calls use it, one at a time (see :mod:`.db`).

    Args:
        max_bytes: The budget (estimated with :func:`entry_bytes`).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        #: Rows read back from the table because they were not cached (since start).
        self.fetched = 0
        self._memories: OrderedDict[int, tuple[Memory | Row, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._memories)

    def memories(self, conn: Any, seqs: Sequence[int]) -> list[tuple[int, Memory]]:
        """``(seq, memory)`` for ``seqs``, in that order; deleted ones are left out."""
        cached = self._memories
        missing = [seq for seq in seqs if seq not in cached]
        rows: list[Row] = []  # to validate: rows fetched now and rows added unread
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows += [
                complete(row)
                for row in conn.execute(
                    f"SELECT {MEMORY_COLUMNS} {FROM} WHERE m.seq IN ({marks})", chunk
                )
            ]
        self.fetched += len(rows)
        rows += [
            entry[0] for seq in seqs if (entry := cached.get(seq)) and isinstance(entry[0], tuple)
        ]
        if rows:
            for row, memory in zip(rows, memories_from_rows(rows), strict=True):
                self._put(row[0], memory, entry_bytes(row))
        found: list[tuple[int, Memory]] = []
        for seq in seqs:
            entry = cached.get(seq)
            if entry is not None:
                cached.move_to_end(seq)
                found.append((seq, cast(Memory, entry[0])))
        self._trim()
        return found

    def add(self, row: Row) -> None:
        """Keep a row this connection just stored."""
        self._put(row[0], row, entry_bytes(row))
        self._trim()

    def _put(self, seq: int, value: Memory | Row, size: int) -> None:
        previous = self._memories.get(seq)
        if previous is not None:
            self.bytes -= previous[1]
        self._memories[seq] = (value, size)
        self.bytes += size

    def _trim(self) -> None:
        cached = self._memories
        while self.bytes > self.max_bytes and cached:
            _, (_, size) = cached.popitem(last=False)
            self.bytes -= size

    def discard(self, seq: int) -> None:
        """Forget a deleted memory."""
        entry = self._memories.pop(seq, None)
        if entry is not None:
            self.bytes -= entry[1]

    def clear(self) -> None:
        self._memories.clear()
        self.bytes = 0
