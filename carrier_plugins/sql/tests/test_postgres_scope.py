"""Scoped search on PostgreSQL past the conformance suite's few rows: a scope with a set
larger than ``EXACT_ROWS`` is searched with one HNSW scan when it is a large enough
share of the table, else its small sets exactly and the large one through the HNSW
index; either way nothing is crowded out by closer memories the scope does not allow."""

from __future__ import annotations

import asyncio
import math
import random

import asyncpg
import pytest
from carrier_plugin_sql import pg_search
from carrier_plugin_sql.pg_search import EXACT_ROWS
from carrier_plugin_sql.postgres import PostgresStore
from carrier_plugin_sql.scopes import Filters

from carrier.types import Memory, MemoryScope, MemoryType, SearchScope

QUERY = [1.0] + [0.0] * 7
BOB = SearchScope(room_id="dm-bob", entity_id="bob", direct=True)


def _unit(rng: random.Random, angle: float) -> list[float]:
    """A unit vector at ``angle`` radians from :data:`QUERY` (8 dims)."""
    rest = [rng.gauss(0.0, 1.0) for _ in range(7)]
    norm = math.sqrt(sum(x * x for x in rest))
    return [math.cos(angle)] + [math.sin(angle) * x / norm for x in rest]


def _memory(
    id: str, room: str, entity: str, type: MemoryType, scope: MemoryScope, vector: list[float]
) -> Memory:
    return Memory(
        id=id,
        agent_id="a",
        entity_id=entity,
        room_id=room,
        type=type,
        scope=scope,
        embedding=vector,
    )


@pytest.mark.parametrize("share", ["table", "scope"])
async def test_scoped_search_past_exact_rows(
    database: str, share: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``table``: the table is too large for one HNSW scan over the scope (the share is
    raised), so small sets are exact; ``scope``: the scope is a large share of it."""
    rng = random.Random(3)
    fact, fragment = MemoryType.FACT, MemoryType.FRAGMENT
    alice = [  # the closest of all, and never in Bob's scope
        _memory(f"alice{i}", "dm-alice", "alice", fact, MemoryScope.DIRECT, _unit(rng, 0.1))
        for i in range(1500)
    ]
    bob = [  # in Bob's room, and direct facts about Bob from his other room
        _memory(
            f"bob{i}",
            "dm-bob" if i < 5 else "dm-bob-2",
            "bob",
            fact,
            MemoryScope.DIRECT,
            _unit(rng, 0.3 + i / 100),
        )
        for i in range(10)
    ]
    knowledge = [  # more than EXACT_ROWS: searched through the index
        _memory(f"k{i}", "knowledge", "a", fragment, MemoryScope.AGENT, _unit(rng, 0.5 + i / 5000))
        for i in range(EXACT_ROWS + 200)
    ]
    everything = alice + bob + knowledge
    async with PostgresStore(database, max_size=8) as store:
        await store.create_memory(everything[0])
        await asyncio.gather(*(store.create_memory(m) for m in everything[1:]))
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("ANALYZE embeddings")  # the table's size, for the listing
    finally:
        await conn.close()
    if share == "table":
        monkeypatch.setattr(pg_search, "HNSW_SHARE", 1.0)
    assert pg_search.hnsw_suffices(len(everything)) is (share == "scope")

    def exact(candidates: list[Memory], limit: int) -> list[str]:
        ranked = sorted(candidates, key=lambda m: -(m.embedding or [0.0])[0])
        return [m.id for m in ranked[:limit]]

    for ef_search in (5, 40):
        async with PostgresStore(database, hnsw_ef_search=ef_search) as store:
            hits = await store.search_memories(
                agent_id="a", embedding=QUERY, limit=10, threshold=-1.0, scope=BOB
            )
            assert [h.memory.id for h in hits] == exact(bob, 10), ef_search
            # again: the knowledge set is now known large and not listed; same answer
            again = await store.search_memories(
                agent_id="a", embedding=QUERY, limit=10, threshold=-1.0, scope=BOB
            )
            assert [h.memory.id for h in again] == exact(bob, 10), ef_search
            hits = await store.search_memories(
                agent_id="a", embedding=QUERY, limit=15, threshold=-1.0, scope=BOB
            )
            found = [h.memory.id for h in hits]
            assert found[:10] == exact(bob, 10)
            assert set(found[10:]) <= {m.id for m in knowledge}
            similarities = [h.similarity for h in hits]
            assert similarities == sorted(similarities, reverse=True)
            # the agent's knowledge alone, through the index
            hits = await store.search_memories(
                agent_id="a", embedding=QUERY, type=fragment, limit=10, threshold=-1.0, scope=BOB
            )
            recalled = set(exact(knowledge, 10)) & {h.memory.id for h in hits}
            assert len(recalled) >= 8, (ef_search, sorted(recalled))
            # by entity, without a scope: Bob's facts, none of Alice's closer ones
            hits = await store.search_memories(
                agent_id="a", embedding=QUERY, entity_id="bob", limit=20, threshold=-1.0
            )
            assert [h.memory.id for h in hits] == exact(bob, 10)

    # the listing behind those searches: small sets listed (an empty one as []), the
    # large one not (None)
    conn = await asyncpg.connect(database)
    try:
        for type_, expected in ((None, [5, 5, None]), ("fragment", [0, 0, None])):
            parts = Filters("a", type=type_).parts(BOB)
            read, values = pg_search.listing("(SELECT $1::text)", parts)
            _, table_rows, *listed = await conn.fetchrow(read, "x", *values)
            assert table_rows == len(everything)
            assert [None if seqs is None else len(seqs) for seqs in listed] == expected
            # a set known to be large is not counted again
            read, values = pg_search.listing("(SELECT $1::text)", parts, known_large={2})
            _, _, *listed = await conn.fetchrow(read, "x", *values)
            assert [None if seqs is None else len(seqs) for seqs in listed] == expected
    finally:
        await conn.close()
