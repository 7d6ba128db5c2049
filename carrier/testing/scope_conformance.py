"""Scope and room-creation checks of the store conformance suite (``docs/scope.md``).

``MemoryStoreConformance`` inherits them; they need the same ``store`` fixture.
Rooms: ``g`` is a group; ``dm-bob`` and ``dm-bob-2`` are Bob's direct rooms;
``dm-alice`` is Alice's. A memory reaches a scope when it is the agent's own, was
stored in the scope's room, or is a direct memory about the scope's direct partner.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from carrier.protocols import MemoryStore
from carrier.types import Content, Memory, MemoryScope, MemoryType, Room, RoomType, SearchScope

__all__ = ["ScopeConformance"]

AGENT = "agent-1"
T0 = 1_700_000_000.0

BOB_DM = SearchScope(room_id="dm-bob", entity_id="bob", direct=True)
BOB_DM_2 = SearchScope(room_id="dm-bob-2", entity_id="bob", direct=True)
ALICE_DM = SearchScope(room_id="dm-alice", entity_id="alice", direct=True)
GROUP = SearchScope(room_id="g", entity_id="bob", direct=False)


def _unit(seed: int, dim: int = 8) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.uniform(-1, 1) for _ in range(dim)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _fact(
    id: str, *, room: str, entity: str, scope: MemoryScope, n: int, seed: int | None = None
) -> Memory:
    return Memory(
        id=id,
        agent_id=AGENT,
        entity_id=entity,
        room_id=room,
        type=MemoryType.FACT,
        scope=scope,
        content=Content(text=id),
        embedding=_unit(n if seed is None else seed),
        created_at=T0 + n,
    )


FACTS = [
    _fact("bob-dm-fact", room="dm-bob", entity="bob", scope=MemoryScope.DIRECT, n=1),
    _fact("bob-group-fact", room="g", entity="bob", scope=MemoryScope.ROOM, n=2),
    _fact("alice-dm-fact", room="dm-alice", entity="alice", scope=MemoryScope.DIRECT, n=3),
    _fact("alice-group-fact", room="g", entity="alice", scope=MemoryScope.ROOM, n=4),
    _fact("agent-knowledge", room="knowledge-agent-1", entity=AGENT, scope=MemoryScope.AGENT, n=5),
    _fact("bob-dm-room-only", room="dm-bob", entity="bob", scope=MemoryScope.ROOM, n=6),
]

#: What each scope may see of FACTS.
VISIBLE = {
    "bob-dm": {"bob-dm-fact", "agent-knowledge", "bob-dm-room-only"},
    "bob-dm-2": {"bob-dm-fact", "agent-knowledge"},
    "alice-dm": {"alice-dm-fact", "agent-knowledge"},
    "group": {"bob-group-fact", "alice-group-fact", "agent-knowledge"},
}
SCOPES = {"bob-dm": BOB_DM, "bob-dm-2": BOB_DM_2, "alice-dm": ALICE_DM, "group": GROUP}


class ScopeConformance:
    """Scoped reads and searches, and atomic room creation."""

    async def _facts(self, store: MemoryStore) -> None:
        for fact in FACTS:
            assert await store.create_memory(fact)

    async def test_scope_round_trips(self, store: MemoryStore) -> None:
        await self._facts(store)
        for fact in FACTS:
            found = await store.get_memory(fact.id)
            assert found is not None
            assert found.scope is fact.scope
        plain = Memory(agent_id=AGENT, entity_id="bob", room_id="g")
        await store.create_memory(plain)
        found = await store.get_memory(plain.id)
        assert found is not None
        assert found.scope is MemoryScope.ROOM

    @pytest.mark.parametrize("name", sorted(SCOPES))
    async def test_scoped_get_memories(self, store: MemoryStore, name: str) -> None:
        await self._facts(store)
        scope = SCOPES[name]
        found = await store.get_memories(agent_id=AGENT, type=MemoryType.FACT, scope=scope)
        assert {m.id for m in found} == VISIBLE[name]
        assert [m.created_at for m in found] == sorted(m.created_at for m in found)

    @pytest.mark.parametrize("name", sorted(SCOPES))
    async def test_scoped_search(self, store: MemoryStore, name: str) -> None:
        await self._facts(store)
        scope = SCOPES[name]
        hits = await store.search_memories(
            agent_id=AGENT,
            embedding=_unit(1),
            type=MemoryType.FACT,
            limit=10,
            threshold=-1.0,
            scope=scope,
        )
        assert {h.memory.id for h in hits} == VISIBLE[name]
        similarities = [h.similarity for h in hits]
        assert similarities == sorted(similarities, reverse=True)

    async def test_scoped_get_memories_by_entity(self, store: MemoryStore) -> None:
        await self._facts(store)
        found = await store.get_memories(
            agent_id=AGENT, entity_id="bob", type=MemoryType.FACT, scope=BOB_DM_2
        )
        assert [m.id for m in found] == ["bob-dm-fact"]
        in_group = await store.get_memories(
            agent_id=AGENT, entity_id="bob", type=MemoryType.FACT, scope=GROUP
        )
        assert [m.id for m in in_group] == ["bob-group-fact"]

    async def test_search_by_entity(self, store: MemoryStore) -> None:
        await self._facts(store)
        hits = await store.search_memories(
            agent_id=AGENT, embedding=_unit(2), entity_id="alice", limit=10, threshold=-1.0
        )
        assert {h.memory.id for h in hits} == {"alice-dm-fact", "alice-group-fact"}
        scoped = await store.search_memories(
            agent_id=AGENT,
            embedding=_unit(2),
            entity_id="bob",
            limit=10,
            threshold=-1.0,
            scope=BOB_DM_2,
        )
        assert [h.memory.id for h in scoped] == ["bob-dm-fact"]

    async def test_scoped_search_is_not_crowded_out(self, store: MemoryStore) -> None:
        """Many closer memories out of scope never hide the ones in scope."""
        query = _unit(99)
        for n in range(60):  # Alice's DM facts, all identical to the query
            await store.create_memory(
                _fact(
                    f"near-{n}",
                    room="dm-alice",
                    entity="alice",
                    scope=MemoryScope.DIRECT,
                    n=100 + n,
                    seed=99,
                )
            )
        far = [
            _fact(f"bob-{n}", room="dm-bob", entity="bob", scope=MemoryScope.DIRECT, n=200 + n)
            for n in range(3)
        ]
        for fact in far:
            await store.create_memory(fact)
        hits = await store.search_memories(
            agent_id=AGENT,
            embedding=query,
            type=MemoryType.FACT,
            limit=3,
            threshold=-1.0,
            scope=BOB_DM_2,
        )
        assert {h.memory.id for h in hits} == {f.id for f in far}
        unscoped = await store.search_memories(
            agent_id=AGENT, embedding=query, type=MemoryType.FACT, limit=100, threshold=-1.0
        )
        expected = [h.memory.id for h in unscoped if BOB_DM_2.allows(h.memory)][:3]
        assert [h.memory.id for h in hits] == expected

    async def test_scoped_search_threshold_and_room(self, store: MemoryStore) -> None:
        await self._facts(store)
        hits = await store.search_memories(
            agent_id=AGENT, embedding=_unit(1), limit=10, threshold=0.999, scope=BOB_DM_2
        )
        assert [h.memory.id for h in hits] == ["bob-dm-fact"]
        in_room = await store.search_memories(
            agent_id=AGENT,
            embedding=_unit(1),
            room_id="dm-bob",
            limit=10,
            threshold=-1.0,
            scope=BOB_DM_2,
        )
        assert {h.memory.id for h in in_room} == {"bob-dm-fact"}

    async def test_create_room_once(self, store: MemoryStore) -> None:
        room = Room(id="r-new", agent_id=AGENT, type=RoomType.DIRECT, owner_id="alice")
        assert await store.create_room(room)
        assert not await store.create_room(room.model_copy(update={"owner_id": "bob"}))
        stored = await store.get_room("r-new")
        assert stored is not None
        assert stored.owner_id == "alice"

    async def test_create_room_race_has_one_winner(self, store: MemoryStore) -> None:
        users = [f"user-{n}" for n in range(8)]
        results = await asyncio.gather(
            *(
                store.create_room(
                    Room(id="r-race", agent_id=AGENT, type=RoomType.DIRECT, owner_id=user)
                )
                for user in users
            )
        )
        assert sum(results) == 1
        winner = users[results.index(True)]
        stored = await store.get_room("r-race")
        assert stored is not None
        assert stored.owner_id == winner
