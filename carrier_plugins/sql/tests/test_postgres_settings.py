"""The PostgreSQL store's ``CARRIER_SQL_*`` settings on a real server (pool sizes,
HNSW ``m``/``ef_construction``/``ef_search``), and filtered search over the HNSW
index returning every match asked for."""

from __future__ import annotations

import asyncio
import math
import random

import asyncpg
import pytest
from carrier_plugin_sql import plugin
from carrier_plugin_sql.postgres import PostgresStore

from carrier.errors import ConfigurationError
from carrier.host import PluginHost
from carrier.types import Memory, MemoryType


@pytest.fixture
def sql_host() -> PluginHost:
    host = PluginHost(autoload=False)
    host.register(plugin, name="sql")
    return host


async def _scalar(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _index_options(url: str) -> list[str]:
    options = await _scalar(
        url, "SELECT reloptions FROM pg_class WHERE relname = $1", "ix_embeddings_hnsw"
    )
    assert options is None or isinstance(options, list)
    return sorted(options or [])


async def test_settings_reach_the_server(
    sql_host: PluginHost, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "POOL_MIN_SIZE": "2",
        "POOL_MAX_SIZE": "3",
        "HNSW_M": "8",
        "HNSW_EF_CONSTRUCTION": "40",
        "HNSW_EF_SEARCH": "123",
    }.items():
        monkeypatch.setenv(f"CARRIER_SQL_{name}", value)
    store = sql_host.stores.create("postgresql", url=database)
    assert isinstance(store, PostgresStore)
    async with store:
        opened = await _scalar(
            database,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert opened == 2  # the pool's minimum, kept open
        assert store._pool.get_max_size() == 3
        await store.create_memory(
            Memory(id="m1", agent_id="a", entity_id="u", room_id="r", embedding=[1.0, 0.0])
        )
        # limit > ef_search raises it for that one query only (SET LOCAL)
        assert len(await store.search_memories(agent_id="a", embedding=[1.0, 0.0], limit=500)) == 1
        for _ in range(3):  # every pooled connection, after a search loaded pgvector
            async with store._pool.acquire() as conn:
                assert await conn.fetchval("SHOW hnsw.ef_search") == "123"
                assert await conn.fetchval("SHOW hnsw.iterative_scan") == "relaxed_order"
    assert await _index_options(database) == ["ef_construction=40", "m=8"]

    # The options apply when the index is created, also when opening finds it missing.
    await _scalar(database, "DROP INDEX ix_embeddings_hnsw")
    monkeypatch.setenv("CARRIER_SQL_HNSW_M", "12")
    async with plugin.build_postgres_store(url=database):  # settings read afresh
        pass
    assert await _index_options(database) == ["ef_construction=40", "m=12"]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CARRIER_SQL_POOL_MIN_SIZE": "5", "CARRIER_SQL_POOL_MAX_SIZE": "2"}, "POOL_MAX_SIZE"),
        (
            {"CARRIER_SQL_HNSW_M": "16", "CARRIER_SQL_HNSW_EF_CONSTRUCTION": "20"},
            "HNSW_EF_CONSTRUCTION",
        ),
        ({"CARRIER_SQL_HNSW_EF_SEARCH": "0"}, "HNSW_EF_SEARCH"),
        ({"CARRIER_SQL_HNSW_EF_SEARCH": "5000"}, "HNSW_EF_SEARCH"),
    ],
)
def test_bad_settings_name_the_variable(
    sql_host: PluginHost,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    named: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"CARRIER_SQL_{named}: "):
        sql_host.stores.create("postgresql", url="postgresql://u@db.example/carrier")


def _unit(rng: random.Random, angle: float) -> list[float]:
    """A unit vector at ``angle`` radians from the query ``[1, 0, ...]`` (8 dims)."""
    rest = [rng.gauss(0.0, 1.0) for _ in range(7)]
    norm = math.sqrt(sum(x * x for x in rest))
    return [math.cos(angle)] + [math.sin(angle) * x / norm for x in rest]


QUERY = [1.0] + [0.0] * 7


async def test_filtered_search_returns_k_matches_when_other_rooms_are_closer(
    database: str,
) -> None:
    """1,000 memories of other rooms lie closer to the query than any of the 1,000
    in room 'target' (type 'fact'): the HNSW index's first candidates are all
    filtered out, yet a search in that room (or of that type) gets its 10 nearest."""
    rng = random.Random(7)
    others = [
        Memory(
            id=f"o{i}",
            agent_id="a",
            entity_id="u",
            room_id=f"room{i % 10}",
            type=MemoryType.FRAGMENT,
            embedding=_unit(rng, rng.uniform(0.0, 0.3)),
        )
        for i in range(1000)
    ]
    targets = [
        Memory(
            id=f"t{i}",
            agent_id="a",
            entity_id="u",
            room_id="target",
            type=MemoryType.FACT,
            embedding=_unit(rng, rng.uniform(0.8, 1.2)),
        )
        for i in range(1000)
    ]
    exact = [m.id for m in sorted(targets, key=lambda m: -(m.embedding or [0.0])[0])[:10]]
    async with PostgresStore(database, max_size=8) as store:
        await store.create_memory(others[0])  # fixes the dimension, creates the index
        await asyncio.gather(*(store.create_memory(m) for m in others[1:] + targets))
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("ANALYZE embeddings")
        for column, value in (("room_id", "target"), ("type", "fact")):
            plan = "\n".join(
                row[0]
                for row in await conn.fetch(
                    f"EXPLAIN SELECT memory_seq FROM embeddings WHERE agent_id = 'a' "
                    f"AND {column} = '{value}' ORDER BY vector <=> $1::vector LIMIT 10",
                    str(QUERY),
                )
            )
            assert "ix_embeddings_hnsw" in plan, plan  # the case under test: the index
    finally:
        await conn.close()

    for ef_search in (5, 40):  # below k, and pgvector's default
        async with PostgresStore(database, hnsw_ef_search=ef_search) as store:
            for found in (
                await store.search_memories(agent_id="a", embedding=QUERY, room_id="target"),
                await store.search_memories(agent_id="a", embedding=QUERY, type=MemoryType.FACT),
            ):
                assert len(found) == 10, (ef_search, [s.memory.id for s in found])
                assert {s.memory.room_id for s in found} == {"target"}
                similarities = [s.similarity for s in found]
                assert similarities == sorted(similarities, reverse=True)
                recalled = set(exact) & {s.memory.id for s in found}
                assert len(recalled) >= 8, (ef_search, sorted(recalled))
