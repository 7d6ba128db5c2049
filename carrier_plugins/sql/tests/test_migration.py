"""A database written by schema version 1 (before memory scopes) opens at the current
version: memories get ``scope`` (knowledge ``'agent'``, the rest ``'room'``), embeddings
get ``entity_id`` and ``scope``, the new indexes exist, and rooms read back with
``owner_id`` unset. ``schema_v1.json`` holds version 1's DDL as that release wrote it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlean
from carrier_plugin_sql import vectors
from carrier_plugin_sql.pg_schema import HNSW_INDEX
from carrier_plugin_sql.postgres import PostgresStore
from carrier_plugin_sql.schema import SCHEMA_VERSION
from carrier_plugin_sql.store import SqlStore, VectorSearch
from carrier_plugin_sql.testing import fresh_database

from carrier.types import Memory, MemoryScope, MemoryType, Room, RoomType, SearchScope

V1 = json.loads((Path(__file__).parent / "schema_v1.json").read_text())

#: ``(id, entity, room, type, embedding)`` of the memories stored by version 1.
OLD = [
    ("msg", "bob", "dm-bob", "message", None),
    ("fact", "bob", "dm-bob", "fact", [1.0, 0.0, 0.0]),
    ("doc", "agent", "knowledge", "document", None),
    ("frag", "agent", "knowledge", "fragment", [0.0, 1.0, 0.0]),
]
SCOPES = {
    "msg": MemoryScope.ROOM,
    "fact": MemoryScope.ROOM,
    "doc": MemoryScope.AGENT,
    "frag": MemoryScope.AGENT,
}
_MEMORY = (
    "INSERT INTO memories (seq, id, agent_id, entity_id, room_id, world_id, type, content, "
    "created_at, is_unique, internal, meta) VALUES ({}, {}, 'a', {}, {}, NULL, {}, "
    """'{{"text":"x"}}', {}, FALSE, FALSE, '{{}}')"""
)
_EMBEDDING = (
    "INSERT INTO embeddings (memory_seq, memory_id, agent_id, room_id, type, dimension, vector) "
    "VALUES ({}, {}, 'a', {}, {}, 3, {})"
)
_CACHE_ENTRY = (
    """INSERT INTO cache (key, value, expires_at) VALUES ('plugin:weather:calls', """
    """'{"count": 2}', NULL)"""
)
_ROOM = """INSERT INTO rooms (id, agent_id, data) VALUES ('dm-bob', 'a', '{"id": "dm-bob",
    "agent_id": "a", "type": "direct", "source": "direct", "metadata": {}}')"""


def _old_rows(vector: Callable[[list[float]], str]) -> list[str]:
    """Version 1's rows, with ``vector`` writing an embedding's SQL literal."""
    statements = [_ROOM]
    for seq, (id_, entity, room, type_, embedding) in enumerate(OLD, 1):
        quoted = [f"'{v}'" for v in (id_, entity, room, type_)]
        statements.append(_MEMORY.format(seq, quoted[0], quoted[1], quoted[2], quoted[3], seq))
        if embedding is not None:
            statements.append(
                _EMBEDDING.format(seq, quoted[0], quoted[2], quoted[3], vector(embedding))
            )
    return statements


async def _check_store(store: Any) -> None:
    for id_, scope in SCOPES.items():
        memory = await store.get_memory(id_)
        assert memory is not None
        assert memory.scope is scope
    # the agent's knowledge is in every scope; bob's room-scoped fact only in its room
    elsewhere = SearchScope(room_id="dm-bob-2", entity_id="bob", direct=True)
    hits = await store.search_memories(
        agent_id="a", embedding=[1.0, 1.0, 0.0], threshold=-1.0, scope=elsewhere
    )
    assert [h.memory.id for h in hits] == ["frag"]
    here = SearchScope(room_id="dm-bob", entity_id="bob", direct=True)
    hits = await store.search_memories(
        agent_id="a", embedding=[1.0, 0.0, 0.0], threshold=-1.0, scope=here
    )
    assert [h.memory.id for h in hits] == ["fact", "frag"]
    knowledge = await store.get_memories(agent_id="a", type=MemoryType.FRAGMENT, scope=elsewhere)
    assert [m.id for m in knowledge] == ["frag"]
    room = await store.get_room("dm-bob")
    assert room is not None
    assert room.owner_id is None
    assert not await store.create_room(Room(id="dm-bob", agent_id="a", owner_id="eve"))
    assert await store.create_room(
        Room(id="dm-ada", agent_id="a", type=RoomType.DIRECT, owner_id="ada")
    )


def _sqlite_schema(path: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Each table's columns (in order, then ``WITHOUT ROWID`` or not) and every
    index's name."""
    conn = sqlean.connect(path)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        columns = {
            t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")]
            + [str(conn.execute("SELECT * FROM pragma_table_list(?)", (t,)).fetchone()[4])]
            for t in tables
        }
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    finally:
        conn.close()
    return columns, indexes


@pytest.mark.parametrize("vector_search", ["numpy", "sqlite-vec"])
async def test_sqlite_version_1_is_migrated(tmp_path: Path, vector_search: VectorSearch) -> None:
    path = tmp_path / "v1.db"
    conn = sqlean.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in V1["sqlite"]:
            conn.execute(statement)
        conn.execute("INSERT INTO carrier_meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO carrier_meta VALUES ('embedding_dimension', '3')")
        for statement in _old_rows(lambda v: f"X'{vectors.encode(v).hex()}'"):
            conn.execute(statement)
        conn.execute(_CACHE_ENTRY)
        conn.execute("COMMIT")
    finally:
        conn.close()
    async with SqlStore(f"sqlite:///{path}", vector_search=vector_search) as store:
        await _check_store(store)
        # version 3 rebuilt the cache table: the entry is still there and still atomic
        assert await store.get_cache("plugin:weather:calls") == {"count": 2}
        assert not await store.add_cache("plugin:weather:calls", {"count": 0})
        assert await store.increment_cache("plugin:weather:n") == 1
    conn = sqlean.connect(path)
    try:
        assert conn.execute(
            "SELECT value FROM carrier_meta WHERE key = 'schema_version'"
        ).fetchone() == (str(SCHEMA_VERSION),)
        assert conn.execute(
            "SELECT memory_id, entity_id, scope FROM embeddings ORDER BY memory_seq"
        ).fetchall() == [("fact", "bob", "room"), ("frag", "agent", "agent")]
    finally:
        conn.close()
    # the same tables, columns and indexes as a new database
    async with SqlStore(f"sqlite:///{tmp_path / 'new.db'}"):
        pass
    assert _sqlite_schema(path) == _sqlite_schema(tmp_path / "new.db")
    assert _sqlite_schema(path)[0]["cache"][-1] == "1"  # WITHOUT ROWID


async def _pg_schema(conn: Any) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """Columns ``(table, column, type and nullability)`` and ``(index, definition)``."""
    columns = {
        (row[0], row[1], f"{row[2]} {row[3]}")
        for row in await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_schema = current_schema()"
        )
    }
    indexes = {
        (row[0], row[1])
        for row in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
    }
    return columns, indexes


async def test_postgres_version_1_is_migrated(database: str, postgres_url: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            for statement in V1["postgresql"]:
                await conn.execute(statement)
            await conn.execute("ALTER TABLE embeddings ALTER COLUMN vector TYPE vector(3)")
            await conn.execute(
                f"CREATE INDEX {HNSW_INDEX} ON embeddings USING hnsw (vector vector_cosine_ops)"
            )
            await conn.execute("INSERT INTO carrier_meta VALUES ('schema_version', '1')")
            await conn.execute("INSERT INTO carrier_meta VALUES ('embedding_dimension', '3')")
            for statement in _old_rows(lambda v: f"'{v}'"):
                await conn.execute(statement)
            await conn.execute("SELECT setval(pg_get_serial_sequence('memories', 'seq'), 4)")
    finally:
        await conn.close()
    async with PostgresStore(database) as store:
        await _check_store(store)
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval(
            "SELECT value FROM carrier_meta WHERE key = 'schema_version'"
        ) == str(SCHEMA_VERSION)
        rows = await conn.fetch("SELECT memory_id, entity_id, scope FROM embeddings ORDER BY 1")
        assert [tuple(row) for row in rows] == [("fact", "bob", "room"), ("frag", "agent", "agent")]
        migrated = await _pg_schema(conn)
    finally:
        await conn.close()
    # the same columns and indexes (the HNSW index built again) as a new database's
    async with fresh_database(postgres_url) as url:
        async with PostgresStore(url) as store:
            await store.create_memory(
                Memory(agent_id="a", entity_id="u", room_id="r", embedding=[1.0, 0.0, 0.0])
            )
        conn = await asyncpg.connect(url)
        try:
            assert migrated == await _pg_schema(conn)
        finally:
            await conn.close()
