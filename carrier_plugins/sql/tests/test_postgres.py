"""``PostgresStore`` beyond the conformance suite: the plugin's schemes, URLs,
errors, the schema version, the vector column and its HNSW index."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from carrier_plugin_sql import plugin
from carrier_plugin_sql.pg_url import parse_postgres_url
from carrier_plugin_sql.postgres import PostgresStore
from carrier_plugin_sql.schema import SCHEMA_VERSION

from carrier.errors import ConfigurationError, StoreError
from carrier.host import PluginHost
from carrier.types import Memory


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_plugin_registers_the_schemes(scheme: str) -> None:
    host = PluginHost(autoload=False)
    host.register(plugin, name="sql")
    store = host.stores.create(scheme, url=f"{scheme}://u:secret@db.example:5433/carrier")
    assert isinstance(store, PostgresStore)
    assert store.url == "postgresql://u:***@db.example:5433/carrier"
    assert "secret" not in repr(store)


def test_urls() -> None:
    target = parse_postgres_url("postgres://u:p%40ss@h/db?sslmode=disable")
    assert target.dsn == "postgresql://u:p%40ss@h/db?sslmode=disable"
    assert target.redacted == "postgresql://u:***@h/db?sslmode=disable"
    assert target.host == "h"
    assert parse_postgres_url("postgresql:///db?host=/run/pg").host == "/run/pg"
    with pytest.raises(ConfigurationError, match="postgresql://user"):
        parse_postgres_url("mysql://h/db")
    with pytest.raises(ConfigurationError, match="no '://'"):
        parse_postgres_url("postgresql:db")


async def test_unreachable_server_names_host_and_url_without_password() -> None:
    store = PostgresStore("postgresql://u:secret@127.0.0.1:1/carrier")
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "postgresql://u:***@127.0.0.1:1/carrier" in message
    assert "secret" not in message
    assert isinstance(caught.value.__cause__, OSError)


async def test_missing_database_is_a_configuration_error(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    missing = urlunsplit((parts.scheme, parts.netloc, "/does_not_exist", parts.query, ""))
    with pytest.raises(ConfigurationError, match="does_not_exist"):
        await PostgresStore(missing).open()


async def test_vector_column_and_hnsw_index(database: str) -> None:
    async with PostgresStore(database) as store:
        await store.create_memory(
            Memory(id="m1", agent_id="a", entity_id="u", room_id="r", embedding=[1.0, 0.0, 0.5])
        )
        assert store.embedding_dimension == 3
    conn = await asyncpg.connect(database)
    try:
        assert (
            await conn.fetchval(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'embeddings'::regclass AND attname = 'vector'"
            )
            == "vector(3)"
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_hnsw'"
        )
        assert "hnsw" in index
        assert "vector_cosine_ops" in index
        version = await conn.fetchval("SELECT value FROM carrier_meta WHERE key = 'schema_version'")
        assert version == str(SCHEMA_VERSION)
        await conn.execute(
            "UPDATE carrier_meta SET value = $1 WHERE key = 'schema_version'",
            str(SCHEMA_VERSION + 1),
        )
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer"):
        await PostgresStore(database).open()


async def test_reopen_keeps_memories_and_dimension(database: str) -> None:
    async with PostgresStore(database) as store:
        await store.create_memory(
            Memory(id="m1", agent_id="a", entity_id="u", room_id="r", embedding=[1.0, 0.0])
        )
    async with PostgresStore(database) as store:
        assert store.embedding_dimension == 2
        found = await store.search_memories(agent_id="a", embedding=[1.0, 0.1])
        assert [s.memory.id for s in found] == ["m1"]


async def test_tables_named_like_carriers_are_refused_others_may_share(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("CREATE TABLE something_else (x int)")  # e.g. a job queue's
        async with PostgresStore(database) as store:
            assert await store.count_memories(agent_id="a") == 0
        assert await conn.fetchval("SELECT count(*) FROM something_else") == 0
    finally:
        await conn.close()


async def test_a_foreign_table_with_a_carrier_name_is_refused(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("CREATE TABLE memories (x int)")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match=r"not Carrier's \(memories, but no carrier_meta"):
        await PostgresStore(database).open()


async def test_first_opens_in_parallel_all_succeed(database: str) -> None:
    stores = [PostgresStore(database) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    for store in stores:
        await store.close()
