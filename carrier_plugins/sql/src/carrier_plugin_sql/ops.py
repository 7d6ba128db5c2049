"""Synchronous SQL operations, each run whole in the connection's thread.

Every function takes the driver connection first and is one store call: one
statement in autocommit mode, or one ``BEGIN IMMEDIATE`` transaction. Rows are
turned into Carrier models here, so a call costs one hop from the event loop.
SQL strings are constants (or cached per filter combination), so the driver's
statement cache keeps them prepared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from carrier.errors import EmbeddingDimensionError
from carrier.types import Memory, ScoredMemory, SearchScope
from carrier_plugin_sql import vectors
from carrier_plugin_sql.db import transaction
from carrier_plugin_sql.rows import MemoryCache, stored_row
from carrier_plugin_sql.scopes import Filters, Part

__all__ = [
    "ADD_CACHE",
    "create_memory",
    "delete_memory",
    "memories_by_seq",
    "read_dimension",
    "select_memories",
]


_INSERT_MEMORY = (
    "INSERT INTO memories (id, agent_id, entity_id, room_id, world_id, type, content, "
    "created_at, is_unique, internal, meta, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
#: add_cache's statement: writes the entry only if its key is absent or expired.
ADD_CACHE = (
    "INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
    "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at "
    "WHERE cache.expires_at IS NOT NULL AND cache.expires_at <= ?"
)
_INSERT_EMBEDDING = (
    "INSERT INTO embeddings (memory_seq, memory_id, agent_id, room_id, type, dimension, vector, "
    "entity_id, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DIMENSION_KEY = "embedding_dimension"


def memory_params(memory: Memory) -> tuple[Any, ...]:
    """The values of :data:`_INSERT_MEMORY` for ``memory``."""
    return (
        memory.id,
        memory.agent_id,
        memory.entity_id,
        memory.room_id,
        memory.world_id,
        memory.type.value,
        memory.content.model_dump_json(exclude_defaults=True),
        memory.created_at,
        memory.unique,
        bool(memory.metadata.get("internal")),
        json.dumps(memory.metadata),
        memory.scope.value,
    )


def read_dimension(conn: Any) -> int | None:
    """The recorded embedding dimension, or ``None`` before the first embedding."""
    row = conn.execute("SELECT value FROM carrier_meta WHERE key = ?", (_DIMENSION_KEY,)).fetchone()
    return None if row is None else int(row[0])


def create_memory(
    conn: Any,
    cache: MemoryCache,
    params: tuple[Any, ...],
    embedding: Sequence[float] | None,
    entries: Sequence[tuple[str, str, float | None]] = (),
    release: Sequence[tuple[str, str]] = (),
) -> tuple[bool, int | None]:
    """Insert a memory (and its embedding), and keep its row in ``cache`` (the next
    read of a room's history then neither fetches nor validates it again); with
    ``entries`` (key, encoded value, expiry), then add those cache entries where their
    key is absent or expired, and delete the ``release`` ones (key, encoded value)
    where the key holds that value. Returns ``(created and every entry added, recorded
    dimension)``."""
    if embedding is None:
        # Two statements, each its own commit: on this SQLite one transaction around
        # both costs more. The entries are added, never overwritten: another process
        # that leased the message between the two keeps its lease, and this call
        # says it got none.
        cursor = conn.execute(_INSERT_MEMORY, params)
        if cursor.rowcount != 1:
            return False, None
        cache.add(stored_row(cursor.lastrowid, params, None))
        return _write_entries(conn, entries, release), None
    found = len(embedding)
    vector = vectors.encode(embedding)
    with transaction(conn):
        if conn.execute("SELECT 1 FROM memories WHERE id = ?", (params[0],)).fetchone():
            return False, read_dimension(conn)
        recorded = read_dimension(conn)
        if recorded is None:
            conn.execute(
                "INSERT INTO carrier_meta (key, value) VALUES (?, ?)", (_DIMENSION_KEY, str(found))
            )
        elif recorded != found:
            raise EmbeddingDimensionError(recorded=recorded, found=found)
        cursor = conn.execute(_INSERT_MEMORY, params)
        conn.execute(
            _INSERT_EMBEDDING,
            (
                cursor.lastrowid,
                params[0],
                params[1],
                params[3],
                params[5],
                found,
                vector,
                params[2],
                params[11],
            ),
        )
        added = _write_entries(conn, entries, release)
    cache.add(stored_row(cursor.lastrowid, params, vector))
    return added, found


def _write_entries(
    conn: Any,
    entries: Sequence[tuple[str, str, float | None]],
    release: Sequence[tuple[str, str]],
) -> bool:
    """Add each entry where its key is absent or expired, then delete each ``release``
    entry that holds its value; whether all were added."""
    now = time.time()
    added = True
    for key, value, expires_at in entries:
        if conn.execute(ADD_CACHE, (key, value, expires_at, now)).rowcount != 1:
            added = False
    for key, value in release:
        conn.execute(
            "DELETE FROM cache WHERE key = ? AND value = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (key, value, now),
        )
    return added


def delete_memory(conn: Any, memory_id: str) -> int | None:
    """Delete a memory and its embedding; its ``seq``, or ``None`` if absent."""
    with transaction(conn):
        row = conn.execute("SELECT seq FROM memories WHERE id = ?", (memory_id,)).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM embeddings WHERE memory_seq = ?", (row[0],))
        conn.execute("DELETE FROM memories WHERE seq = ?", (row[0],))
    return int(row[0])


#: SQLite plans ``LIMIT ?`` far worse than a literal: with a bound limit a scoped read
#: (a ``UNION ALL`` of three ranges) took 55 µs instead of 7 µs, a plain one 13 instead
#: of 5. Limits are therefore written into the statement as integers; each distinct
#: limit is one more entry in the connection's statement cache.
def _limit(limit: int) -> str:
    return f"LIMIT {int(limit)}"


@cache
def _select_sql(room: bool, entity: bool, type_: bool, before: bool, limit: int) -> str:
    where = ["agent_id = ?"]
    where += ["room_id = ?"] if room else []
    where += ["entity_id = ?"] if entity else []
    where += ["type = ?"] if type_ else []
    where += ["created_at < ?"] if before else []
    return (
        f"SELECT seq FROM memories WHERE {' AND '.join(where)} "
        f"ORDER BY created_at DESC, seq DESC {_limit(limit)}"
    )


def select_memories(
    conn: Any,
    cache: MemoryCache,
    agent_id: str,
    room_id: str | None,
    entity_id: str | None,
    type_: str | None,
    limit: int,
    before: float | None,
    scope: SearchScope | None = None,
) -> list[Memory]:
    """The newest ``limit`` matching memories, oldest first: ``seq`` values from a
    backward range scan of a covering index (with a scope, one per set of the scope,
    merged), then the memories (cached or fetched)."""
    if scope is None:
        sql = _select_sql(
            room_id is not None,
            entity_id is not None,
            type_ is not None,
            before is not None,
            limit,
        )
        params = [agent_id, room_id, entity_id, type_, before]
        values = [v for v in params if v is not None]
    else:
        filters = Filters(agent_id, room_id, entity_id, type_, before)
        sql, values = _scoped_select(filters.parts(scope), limit)
    seqs = [row[0] for row in conn.execute(sql, values)]
    seqs.reverse()
    return [memory for _, memory in cache.memories(conn, seqs)]


def _scoped_select(parts: Sequence[Part], limit: int) -> tuple[str, list[Any]]:
    """The newest ``limit`` of each set, then the newest ``limit`` of them all."""
    order = f"ORDER BY created_at DESC, seq DESC {_limit(limit)}"
    branches = " UNION ALL ".join(
        f"SELECT * FROM (SELECT seq, created_at FROM memories WHERE {part.sql()} {order})"
        for part in parts
    )
    values = [value for part in parts for value in part.values]
    return f"SELECT seq FROM ({branches}) {order}", values


def memories_by_seq(conn: Any, cache: MemoryCache, seqs: Sequence[int]) -> dict[int, Memory]:
    """Memories by ``seq``; deleted ones are missing from the answer."""
    return dict(cache.memories(conn, seqs))


def _check_query(conn: Any, embedding: Sequence[float]) -> int | None:
    recorded = read_dimension(conn)
    if recorded is not None and len(embedding) != recorded:
        raise EmbeddingDimensionError(recorded=recorded, found=len(embedding))
    return recorded


def search_numpy(
    conn: Any,
    holder: dict[str, vectors.VectorIndex],
    cache: MemoryCache,
    query: Sequence[float],
    filters: dict[str, Any],
) -> tuple[int | None, list[ScoredMemory]]:
    """Exact top-k in RAM, after catching up with rows written since the last search.

    The catch-up is skipped when nothing was written since it last ran, by this
    connection (``total_changes``) or another (``PRAGMA data_version``): the searches
    of one message (facts, knowledge, earlier words) read the database once.
    """
    mark = (conn.total_changes, conn.execute("PRAGMA data_version").fetchone()[0])
    index = holder.get("index")
    if index is not None and holder.get("mark") == mark:  # type: ignore[comparison-overlap]
        recorded = index.dimension
        if len(query) != recorded:
            raise EmbeddingDimensionError(recorded=recorded, found=len(query))
    else:
        found_dimension = _check_query(conn, query)
        if found_dimension is None:
            return None, []
        recorded = found_dimension
        if index is None or index.dimension != recorded:
            index = holder["index"] = vectors.VectorIndex(recorded)
        cursor = conn.execute(
            "SELECT memory_seq, agent_id, room_id, type, entity_id, scope, vector "
            "FROM embeddings WHERE memory_seq > ? ORDER BY memory_seq",
            (index.last_seq,),
        )
        while batch := cursor.fetchmany(10_000):
            index.add_rows(batch)
        holder["mark"] = mark  # type: ignore[assignment]
    unit = index.unit_query(query)
    while True:
        hits = index.search(unit, **filters)
        found = memories_by_seq(conn, cache, [seq for seq, _ in hits])
        gone = [seq for seq, _ in hits if seq not in found]
        if not gone:  # none deleted by another process meanwhile
            return recorded, [ScoredMemory(memory=found[s], similarity=sim) for s, sim in hits]
        for seq in gone:
            index.remove(seq)


def search_sqlite_vec(
    conn: Any, cache: MemoryCache, query: Sequence[float], filters: dict[str, Any]
) -> tuple[int | None, list[ScoredMemory]]:
    """Exact top-k inside SQLite with sqlite-vec's ``vec_distance_cosine``, over the
    rows of each set of the scope (see :mod:`.scopes`)."""
    recorded = _check_query(conn, query)
    if recorded is None or filters["limit"] <= 0:
        return recorded, []
    where = Filters(
        filters["agent_id"],
        room_id=filters["room_id"],
        entity_id=filters["entity_id"],
        type=filters["type"],
    )
    blob = vectors.encode(query)
    branches, values = [], []
    for part in where.parts(filters["scope"]):
        branches.append(
            "SELECT memory_seq, 1.0 - vec_distance_cosine(vector, ?) AS similarity "
            f"FROM embeddings WHERE {part.sql()}"
        )
        values += [blob, *part.values]
    values.append(filters["threshold"])
    rows = conn.execute(
        f"SELECT memory_seq, similarity FROM ({' UNION ALL '.join(branches)}) "
        f"WHERE similarity >= ? ORDER BY similarity DESC, memory_seq {_limit(filters['limit'])}",
        values,
    ).fetchall()
    found = memories_by_seq(conn, cache, [row[0] for row in rows])
    return recorded, [
        ScoredMemory(memory=found[seq], similarity=float(sim)) for seq, sim in rows if seq in found
    ]
