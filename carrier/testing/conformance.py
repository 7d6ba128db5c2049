"""Conformance suites for plugin authors: subclass and provide a fixture.

``MemoryStoreConformance`` checks every method of :class:`carrier.MemoryStore`
against the semantics of the kernel's ``InMemoryStore``. Subclass it in a test
module and provide an async ``store`` fixture that yields an *opened*, empty store::

    class TestMyStore(MemoryStoreConformance):
        @pytest_asyncio.fixture
        async def store(self, tmp_path):
            async with MyStore(url=f"my:///{tmp_path}/x.db") as s:
                yield s

Stores may keep embeddings at float32 precision, so embeddings and similarities
are compared to 1e-5; every other field must round-trip exactly.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from carrier.errors import EmbeddingDimensionError, StoreError
from carrier.protocols import MemoryStore
from carrier.stores import TurnQuery
from carrier.testing.cache_conformance import CacheConformance
from carrier.testing.scope_conformance import ScopeConformance
from carrier.types import (
    Attachment,
    Content,
    Entity,
    Goal,
    GoalStatus,
    Memory,
    MemoryType,
    Objective,
    Participant,
    ParticipantState,
    Role,
    Room,
    RoomType,
    Task,
)

__all__ = ["MemoryStoreConformance"]

AGENT = "agent-1"
OTHER_AGENT = "agent-2"
T0 = 1_700_000_000.0


def _memory(
    n: int,
    *,
    room: str = "room-1",
    entity: str = "user-1",
    agent: str = AGENT,
    type: MemoryType = MemoryType.MESSAGE,
    embedding: Sequence[float] | None = None,
    created_at: float | None = None,
    id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Memory:
    return Memory(
        id=id or f"m-{agent}-{n}",
        agent_id=agent,
        entity_id=entity,
        room_id=room,
        type=type,
        content=Content(text=f"message {n}"),
        embedding=list(embedding) if embedding is not None else None,
        created_at=T0 + n if created_at is None else created_at,
        metadata=metadata or {},
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _assert_same(found: Memory | None, expected: Memory) -> None:
    """Equal in every field; the embedding to float32 precision."""
    assert found is not None, f"memory {expected.id!r} is missing"
    assert found.model_dump(exclude={"embedding"}) == expected.model_dump(exclude={"embedding"})
    if expected.embedding is None:
        assert found.embedding is None
    else:
        assert found.embedding == pytest.approx(expected.embedding, rel=1e-6, abs=1e-7)


def _ids(memories: Sequence[Memory]) -> list[str]:
    return [m.id for m in memories]


class MemoryStoreConformance(ScopeConformance, CacheConformance):
    """The ``MemoryStore`` contract. Subclasses provide a ``store`` fixture.

    Scoped reads and room creation are checked by the inherited
    :class:`~carrier.testing.scope_conformance.ScopeConformance`, the cache and its
    atomic operations by :class:`~carrier.testing.cache_conformance.CacheConformance`.
    """

    @pytest.fixture
    def store(self) -> Any:  # pragma: no cover - always overridden
        pytest.fail(
            f"{type(self).__name__} runs MemoryStoreConformance but defines no 'store' "
            f"fixture; add one (@pytest_asyncio.fixture) that yields an opened, empty store."
        )

    # ---- memories: create, get, idempotence ------------------------------------

    async def test_create_and_get_round_trip(self, store: MemoryStore) -> None:
        memory = Memory(
            agent_id=AGENT,
            entity_id="user-1",
            room_id="room-1",
            world_id="world-1",
            type=MemoryType.DOCUMENT,
            content=Content(
                text="hello",
                thought="hm",
                actions=["REPLY"],
                in_reply_to="m-0",
                attachments=[Attachment(id="a1", url="https://example.org/x", title="x")],
                custom_field={"nested": [1, 2.5, "three"]},
            ),
            embedding=[0.1, 0.2, 0.3],
            created_at=T0 + 0.123456789,
            unique=True,
            metadata={"source": "test", "n": 3, "list": [1, 2]},
        )
        assert await store.create_memory(memory) is True
        _assert_same(await store.get_memory(memory.id), memory)
        assert await store.get_memory("no-such-id") is None
        assert store.embedding_dimension == 3

    async def test_create_memory_is_idempotent(self, store: MemoryStore) -> None:
        first = _memory(1)
        assert await store.create_memory(first) is True
        replay = first.model_copy(update={"content": Content(text="changed"), "created_at": T0})
        assert await store.create_memory(replay) is False
        _assert_same(await store.get_memory(first.id), first)
        assert await store.count_memories(agent_id=AGENT) == 1
        assert _ids(await store.get_memories(agent_id=AGENT)) == [first.id]

    async def test_get_memories_by_id_reads_the_stored_ones_in_order(
        self, store: MemoryStore
    ) -> None:
        first, second, third = _memory(1, embedding=[1.0, 0.0]), _memory(2), _memory(3)
        for memory in (first, second, third):
            await store.create_memory(memory)
        found = await store.get_memories_by_id([third.id, "missing", first.id, third.id])
        assert _ids(found) == [third.id, first.id]
        _assert_same(found[1], first)
        assert await store.get_memories_by_id(["missing"]) == []
        assert await store.get_memories_by_id([]) == []

    async def test_create_memory_with_cache_writes_both_or_neither(
        self, store: MemoryStore
    ) -> None:
        first = _memory(1, embedding=[1.0, 0.0])
        entries = {"run:1": {"owner": "a", "until": 5.5}, "act:1": '{"ok":true}'}
        assert await store.create_memory_with_cache(first, entries, ttl_s=60) is True
        _assert_same(await store.get_memory(first.id), first)
        assert await store.get_cache("run:1") == {"owner": "a", "until": 5.5}
        assert await store.get_cache("act:1") == '{"ok":true}'
        # the memory exists: nothing is written
        again = {"run:1": {"owner": "b"}, "act:2": 1}
        assert await store.create_memory_with_cache(first, again) is False
        assert await store.get_cache("run:1") == {"owner": "a", "until": 5.5}
        assert await store.get_cache("act:2") is None
        # a wrong dimension: neither the memory nor the entries
        wrong = _memory(2, embedding=[1.0, 0.0, 0.0])
        with pytest.raises(EmbeddingDimensionError):
            await store.create_memory_with_cache(wrong, {"run:2": 1})
        assert await store.get_memory(wrong.id) is None
        assert await store.get_cache("run:2") is None
        # a value that is not JSON: neither
        with pytest.raises(StoreError, match="JSON"):
            await store.create_memory_with_cache(_memory(3), {"run:3": object()})
        assert await store.get_memory(f"m-{AGENT}-3") is None
        # a live entry in the way (another process's lease): kept, and the call says so
        await store.set_cache("run:5", {"owner": "other"})
        assert await store.create_memory_with_cache(_memory(5), {"run:5": {"owner": "me"}}) is False
        assert await store.get_memory(f"m-{AGENT}-5") is not None
        assert await store.get_cache("run:5") == {"owner": "other"}
        # an expired one is replaced
        await store.set_cache("run:6", {"owner": "gone"}, ttl_s=0.01)
        await asyncio.sleep(0.05)
        assert await store.create_memory_with_cache(_memory(6), {"run:6": {"owner": "me"}})
        assert await store.get_cache("run:6") == {"owner": "me"}
        # without an embedding, and entries that expire
        assert await store.create_memory_with_cache(_memory(4), {"brief": 4}, ttl_s=0.05)
        assert await store.get_cache("brief") == 4
        await asyncio.sleep(0.12)
        assert await store.get_cache("brief") is None
        assert await store.get_memory(f"m-{AGENT}-4") is not None

    async def test_create_memory_with_cache_releases_the_entries_that_hold_their_value(
        self, store: MemoryStore
    ) -> None:
        await store.set_cache("run:7", {"owner": "me", "until": 1.5})
        await store.set_cache("run:8", {"owner": "other"})
        release = {"run:7": {"owner": "me", "until": 1.5}, "run:8": {"owner": "me"}}
        seventh = _memory(7, embedding=[1.0, 0.0])
        assert await store.create_memory_with_cache(
            seventh, {"act:7": 1}, ttl_s=60, release=release
        )
        assert await store.get_cache("run:7") is None  # it held that value: deleted
        assert await store.get_cache("run:8") == {"owner": "other"}  # another's: kept
        assert await store.get_cache("act:7") == 1
        _assert_same(await store.get_memory(seventh.id), seventh)
        # without an embedding, and without entries to add
        await store.set_cache("run:9", "mine")
        assert await store.create_memory_with_cache(_memory(9), {}, release={"run:9": "mine"})
        assert await store.get_cache("run:9") is None
        # the memory existed: nothing is deleted
        await store.set_cache("run:10", "mine")
        assert (
            await store.create_memory_with_cache(_memory(9), {}, release={"run:10": "mine"})
            is False
        )
        assert await store.get_cache("run:10") == "mine"

    async def test_concurrent_creates_with_cache_have_one_winner(self, store: MemoryStore) -> None:
        memory = _memory(1)
        results = await asyncio.gather(
            *(store.create_memory_with_cache(memory, {"run:1": n}) for n in range(8))
        )
        assert sorted(results) == [False] * 7 + [True]
        assert await store.get_cache("run:1") == results.index(True)

    async def test_embedding_dimension_starts_unknown(self, store: MemoryStore) -> None:
        assert store.embedding_dimension is None
        await store.create_memory(_memory(1))
        assert store.embedding_dimension is None
        await store.create_memory(_memory(2, embedding=[1.0, 0.0]))
        assert store.embedding_dimension == 2

    async def test_concurrent_creates_all_land(self, store: MemoryStore) -> None:
        memories = [_memory(n) for n in range(50)]
        results = await asyncio.gather(*(store.create_memory(m) for m in memories))
        assert all(results)
        again = await asyncio.gather(*(store.create_memory(m) for m in memories[:10]))
        assert not any(again)
        assert await store.count_memories(agent_id=AGENT) == 50
        found = await store.get_memories(agent_id=AGENT, limit=100)
        assert _ids(found) == _ids(memories)

    # ---- memories: ordering and filters ---------------------------------------------

    async def test_get_memories_newest_limit_oldest_first(self, store: MemoryStore) -> None:
        memories = [_memory(n) for n in range(10)]
        shuffled = memories[:]
        random.Random(7).shuffle(shuffled)
        for memory in shuffled:
            await store.create_memory(memory)
        assert _ids(await store.get_memories(agent_id=AGENT, room_id="room-1", limit=4)) == _ids(
            memories[6:]
        )
        assert _ids(await store.get_memories(agent_id=AGENT, limit=50)) == _ids(memories)
        before = await store.get_memories(agent_id=AGENT, room_id="room-1", limit=3, before=T0 + 5)
        assert _ids(before) == _ids(memories[2:5])  # strictly before
        assert await store.get_memories(agent_id=AGENT, limit=0) == []
        assert await store.get_memories(agent_id=AGENT, before=T0) == []
        _assert_same((await store.get_memories(agent_id=AGENT, limit=1))[0], memories[-1])

    async def test_get_memories_ties_keep_insertion_order(self, store: MemoryStore) -> None:
        memories = [_memory(n, created_at=T0) for n in range(5)]
        for memory in memories:
            await store.create_memory(memory)
        assert _ids(await store.get_memories(agent_id=AGENT, room_id="room-1")) == _ids(memories)
        assert _ids(await store.get_memories(agent_id=AGENT, limit=2)) == _ids(memories[3:])

    async def test_get_memories_filters(self, store: MemoryStore) -> None:
        rows = [
            _memory(0, room="r1", entity="alice"),
            _memory(1, room="r2", entity="alice"),
            _memory(2, room="r1", entity="bob", type=MemoryType.FACT),
            _memory(3, room="r1", entity="alice", type=MemoryType.FACT),
            _memory(4, room="r2", entity="bob"),
            _memory(5, room="r1", agent=OTHER_AGENT, entity="alice"),
        ]
        for memory in rows:
            await store.create_memory(memory)

        async def ids(**filters: Any) -> list[str]:
            return _ids(await store.get_memories(**filters))

        assert await ids(agent_id=AGENT) == _ids(rows[:5])
        assert await ids(agent_id=AGENT, room_id="r1") == _ids([rows[0], rows[2], rows[3]])
        assert await ids(agent_id=AGENT, entity_id="alice") == _ids([rows[0], rows[1], rows[3]])
        assert await ids(agent_id=AGENT, type=MemoryType.FACT) == _ids([rows[2], rows[3]])
        assert await ids(agent_id=AGENT, room_id="r1", entity_id="alice") == _ids(
            [rows[0], rows[3]]
        )
        assert await ids(agent_id=AGENT, room_id="r1", type=MemoryType.MESSAGE) == [rows[0].id]
        assert await ids(agent_id=AGENT, entity_id="bob", type=MemoryType.FACT) == [rows[2].id]
        assert await ids(agent_id=AGENT, room_id="r1", type=MemoryType.FACT, limit=1) == [
            rows[3].id
        ]
        assert await ids(agent_id=OTHER_AGENT) == [rows[5].id]
        assert await ids(agent_id="nobody") == []
        assert await ids(agent_id=AGENT, room_id="no-room") == []

    async def test_count_memories(self, store: MemoryStore) -> None:
        for n in range(6):
            await store.create_memory(
                _memory(
                    n,
                    room="r1" if n % 2 else "r2",
                    type=MemoryType.FACT if n < 2 else MemoryType.MESSAGE,
                )
            )
        await store.create_memory(_memory(9, agent=OTHER_AGENT))
        assert await store.count_memories(agent_id=AGENT) == 6
        assert await store.count_memories(agent_id=AGENT, room_id="r1") == 3
        assert await store.count_memories(agent_id=AGENT, type=MemoryType.FACT) == 2
        assert await store.count_memories(agent_id=AGENT, room_id="r1", type=MemoryType.FACT) == 1
        assert await store.count_memories(agent_id=OTHER_AGENT) == 1
        assert await store.count_memories(agent_id="nobody") == 0

    async def test_delete_memory(self, store: MemoryStore) -> None:
        keep, drop = _memory(1, embedding=[1.0, 0.0]), _memory(2, embedding=[1.0, 0.1])
        await store.create_memory(keep)
        await store.create_memory(drop)
        assert await store.delete_memory(drop.id) is True
        assert await store.delete_memory(drop.id) is False
        assert await store.delete_memory("no-such-id") is False
        assert await store.get_memory(drop.id) is None
        assert _ids(await store.get_memories(agent_id=AGENT)) == [keep.id]
        assert await store.count_memories(agent_id=AGENT) == 1
        found = await store.search_memories(agent_id=AGENT, embedding=[1.0, 0.05])
        assert [s.memory.id for s in found] == [keep.id]
        assert await store.create_memory(drop) is True  # the id is free again
        assert _ids(await store.get_memories(agent_id=AGENT)) == [keep.id, drop.id]

    # ---- semantic search ----------------------------------------------------------------

    async def _search_fixture(self, store: MemoryStore) -> list[Memory]:
        rng = random.Random(42)
        memories = []
        for n in range(60):
            memories.append(
                _memory(
                    n,
                    room=f"r{n % 3}",
                    type=(MemoryType.FACT, MemoryType.MESSAGE, MemoryType.FRAGMENT)[n % 4 % 3],
                    embedding=[rng.gauss(0, 1) for _ in range(16)],
                )
            )
        memories.append(_memory(100, agent=OTHER_AGENT, embedding=[1.0] * 16))
        memories.append(_memory(101))  # no embedding: never found
        for memory in memories:
            assert await store.create_memory(memory)
        return memories

    @staticmethod
    def _exact(
        memories: Sequence[Memory],
        query: Sequence[float],
        *,
        room: str | None = None,
        type: MemoryType | None = None,
    ) -> list[tuple[str, float]]:
        scored = [
            (m.id, _cosine(query, m.embedding))
            for m in memories
            if m.agent_id == AGENT
            and m.embedding is not None
            and (room is None or m.room_id == room)
            and (type is None or m.type == type)
        ]
        return sorted(scored, key=lambda pair: pair[1], reverse=True)

    async def test_search_equals_exact_cosine(self, store: MemoryStore) -> None:
        memories = await self._search_fixture(store)
        rng = random.Random(1)
        for _ in range(5):
            query = [rng.gauss(0, 1) for _ in range(16)]
            expected = self._exact(memories, query)
            found = await store.search_memories(
                agent_id=AGENT, embedding=query, limit=10, threshold=-1.0
            )
            assert [s.memory.id for s in found] == [i for i, _ in expected[:10]]
            assert [s.similarity for s in found] == pytest.approx(
                [sim for _, sim in expected[:10]], abs=1e-5
            )
            by_id = {m.id: m for m in memories}
            for scored in found:
                _assert_same(scored.memory, by_id[scored.memory.id])

    async def test_search_threshold_and_limit(self, store: MemoryStore) -> None:
        memories = await self._search_fixture(store)
        query = memories[5].embedding
        assert query is not None
        expected = self._exact(memories, query)
        threshold = (expected[3][1] + expected[4][1]) / 2  # between the 4th and 5th
        found = await store.search_memories(
            agent_id=AGENT, embedding=query, limit=10, threshold=threshold
        )
        assert [s.memory.id for s in found] == [i for i, _ in expected[:4]]
        assert found[0].memory.id == memories[5].id
        assert found[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert all(s.similarity >= threshold for s in found)
        default = await store.search_memories(agent_id=AGENT, embedding=query, limit=100)
        assert [s.memory.id for s in default] == [i for i, sim in expected if sim >= 0.0]
        assert len(await store.search_memories(agent_id=AGENT, embedding=query, limit=2)) == 2

    async def test_search_filters(self, store: MemoryStore) -> None:
        memories = await self._search_fixture(store)
        query = [random.Random(3).gauss(0, 1) for _ in range(16)]
        for room, type in [("r1", None), (None, MemoryType.FACT), ("r2", MemoryType.FRAGMENT)]:
            expected = self._exact(memories, query, room=room, type=type)
            found = await store.search_memories(
                agent_id=AGENT, embedding=query, room_id=room, type=type, limit=5, threshold=-1.0
            )
            assert [s.memory.id for s in found] == [i for i, _ in expected[:5]]
            assert all(room is None or s.memory.room_id == room for s in found)
            assert all(type is None or s.memory.type == type for s in found)
        other = await store.search_memories(agent_id=OTHER_AGENT, embedding=[1.0] * 16)
        assert [s.memory.id for s in other] == [f"m-{OTHER_AGENT}-100"]
        assert other[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert await store.search_memories(agent_id="nobody", embedding=[1.0] * 16) == []
        assert (
            await store.search_memories(agent_id=AGENT, embedding=[1.0] * 16, room_id="nowhere")
            == []
        )

    async def test_search_without_embeddings_is_empty(self, store: MemoryStore) -> None:
        await store.create_memory(_memory(1))
        assert await store.search_memories(agent_id=AGENT, embedding=[1.0, 2.0]) == []

    async def test_embedding_dimension_errors(self, store: MemoryStore) -> None:
        await store.create_memory(_memory(1, embedding=[0.5] * 4))
        with pytest.raises(EmbeddingDimensionError) as stored:
            await store.create_memory(_memory(2, embedding=[0.5] * 3))
        assert isinstance(stored.value, StoreError)
        assert "4" in str(stored.value)
        assert "3" in str(stored.value)
        assert (stored.value.recorded, stored.value.found) == (4, 3)
        assert await store.get_memory(f"m-{AGENT}-2") is None
        with pytest.raises(EmbeddingDimensionError) as queried:
            await store.search_memories(agent_id=AGENT, embedding=[0.5] * 5)
        assert (queried.value.recorded, queried.value.found) == (4, 5)
        assert "4" in str(queried.value)
        assert "5" in str(queried.value)
        assert store.embedding_dimension == 4

    # ---- unanswered messages -------------------------------------------------------------

    async def test_unanswered_messages(self, store: MemoryStore) -> None:
        asked = [_memory(n, entity="user-1") for n in range(4)]
        for memory in asked:
            await store.create_memory(memory)
        await store.create_memory(_memory(10, entity=AGENT))  # the agent's own message
        await store.create_memory(_memory(11, metadata={"internal": True}))
        await store.create_memory(_memory(12, type=MemoryType.FACT))
        await store.create_memory(_memory(13, agent=OTHER_AGENT))
        answer = _memory(20, entity=AGENT, id=f"{asked[1].id}-{AGENT}")
        await store.create_memory(answer)
        found = await store.unanswered_messages(agent_id=AGENT)
        assert _ids(found) == _ids([asked[0], asked[2], asked[3]])
        _assert_same(found[0], asked[0])
        assert _ids(await store.unanswered_messages(agent_id=AGENT, limit=2)) == _ids(
            [asked[0], asked[2]]
        )
        assert _ids(await store.unanswered_messages(agent_id=OTHER_AGENT)) == [
            f"m-{OTHER_AGENT}-13"
        ]
        await store.delete_memory(answer.id)  # the question is open again
        assert _ids(await store.unanswered_messages(agent_id=AGENT)) == _ids(asked)
        await store.delete_memory(asked[0].id)
        assert _ids(await store.unanswered_messages(agent_id=AGENT)) == _ids(asked[1:])

    async def test_unanswered_when_answer_came_first(self, store: MemoryStore) -> None:
        question = _memory(1)
        await store.create_memory(_memory(2, entity=AGENT, id=f"{question.id}-{AGENT}"))
        await store.create_memory(question)
        assert await store.unanswered_messages(agent_id=AGENT) == []

    # ---- agents, entities, rooms, participants ---------------------------------------

    async def test_agents(self, store: MemoryStore) -> None:
        assert await store.get_agent(AGENT) is None
        await store.upsert_agent(AGENT, "Ada", {"bio": ["x"], "n": 1})
        assert await store.get_agent(AGENT) == {
            "id": AGENT,
            "name": "Ada",
            "data": {"bio": ["x"], "n": 1},
        }
        await store.upsert_agent(AGENT, "Ada 2", {})
        assert await store.get_agent(AGENT) == {"id": AGENT, "name": "Ada 2", "data": {}}

    async def test_entities(self, store: MemoryStore) -> None:
        alice = Entity(id="alice", agent_id=AGENT, names=["Alice"], metadata={"k": "v"})
        bob = Entity(id="bob", agent_id=AGENT, names=["Bob", "bobby"])
        await store.upsert_entity(alice)
        await store.upsert_entity(bob)
        found = await store.get_entities(["alice", "bob", "nobody"])
        assert sorted(found, key=lambda e: e.id) == [alice, bob]
        renamed = alice.model_copy(update={"names": ["Alice", "Al"]})
        await store.upsert_entity(renamed)
        assert await store.get_entities(["alice"]) == [renamed]
        assert await store.get_entities([]) == []

    async def test_rooms(self, store: MemoryStore) -> None:
        room = Room(
            id="room-1",
            agent_id=AGENT,
            name="general",
            source="discord",
            type=RoomType.GROUP,
            channel_id="c1",
            world_id="w1",
            metadata={"topic": "x"},
        )
        assert await store.get_room("room-1") is None
        await store.upsert_room(room)
        assert await store.get_room("room-1") == room
        renamed = room.model_copy(update={"name": "random"})
        await store.upsert_room(renamed)
        assert await store.get_room("room-1") == renamed

    async def test_participants(self, store: MemoryStore) -> None:
        await store.upsert_participant(Participant(room_id="r1", entity_id="alice"))
        await store.upsert_participant(Participant(room_id="r1", entity_id="bob", role=Role.ADMIN))
        await store.upsert_participant(Participant(room_id="r2", entity_id="alice"))
        found = await store.get_participants("r1")
        assert sorted(found, key=lambda p: p.entity_id) == [
            Participant(room_id="r1", entity_id="alice"),
            Participant(room_id="r1", entity_id="bob", role=Role.ADMIN),
        ]
        assert await store.get_participants("nowhere") == []
        assert await store.get_rooms_for_entity("alice") == ["r1", "r2"]
        assert await store.get_rooms_for_entity("bob") == ["r1"]
        assert await store.get_rooms_for_entity("nobody") == []

        await store.set_participant_state("r1", "bob", ParticipantState.MUTED)
        bob = await store.get_participant("r1", "bob")
        assert bob == Participant(
            room_id="r1", entity_id="bob", state=ParticipantState.MUTED, role=Role.ADMIN
        )
        await store.set_participant_state("r3", "carol", ParticipantState.FOLLOWED)
        assert await store.get_participant("r3", "carol") == Participant(
            room_id="r3", entity_id="carol", state=ParticipantState.FOLLOWED
        )
        assert await store.get_rooms_for_entity("carol") == ["r3"]
        assert await store.get_participant("r1", "nobody") is None
        await store.upsert_participant(Participant(room_id="r1", entity_id="bob", role=Role.OWNER))
        assert len(await store.get_participants("r1")) == 2
        assert (await store.get_participant("r1", "bob")) == Participant(
            room_id="r1", entity_id="bob", role=Role.OWNER
        )

    async def test_room_with_actors(self, store: MemoryStore) -> None:
        assert await store.get_room_with_actors("lounge") == (None, [], [])
        room = Room(id="lounge", agent_id=AGENT, name="lounge", type=RoomType.GROUP)
        await store.upsert_room(room)
        assert await store.get_room_with_actors("lounge") == (room, [], [])
        ada = Entity(id="ada", agent_id=AGENT, names=["Ada"], metadata={"k": 1})
        bob = Entity(id="bob", agent_id=AGENT, names=["Bob"])
        await store.upsert_entity(ada)
        await store.upsert_entity(bob)
        for entity_id in ("bob", "ada", "ghost"):  # ghost: a participant without an entity
            await store.upsert_participant(Participant(room_id="lounge", entity_id=entity_id))
        await store.upsert_participant(Participant(room_id="elsewhere", entity_id="ada"))
        await store.set_participant_state("lounge", "bob", ParticipantState.MUTED)
        found, participants, actors = await store.get_room_with_actors("lounge")
        assert found == room
        assert participants == await store.get_participants("lounge")  # its order, too
        assert {p.entity_id for p in participants} == {"ada", "bob", "ghost"}
        order = [p.entity_id for p in participants if p.entity_id != "ghost"]
        assert actors == [{"ada": ada, "bob": bob}[i] for i in order]
        assert await store.get_room_with_actors("elsewhere") == (None, [], [])

    # ---- goals and tasks ------------------------------------------------------------------

    async def test_create_room_with_writes_the_members_only_of_a_room_it_created(
        self, store: MemoryStore
    ) -> None:
        room = Room(id="lounge", agent_id=AGENT, type=RoomType.GROUP, owner_id="ada")
        members = [
            Participant(room_id="lounge", entity_id="ada", role=Role.ADMIN),
            Participant(room_id="lounge", entity_id=AGENT),
        ]
        assert await store.create_room_with(room, members) is True
        assert await store.get_room("lounge") == room
        found = {p.entity_id: p for p in await store.get_participants("lounge")}
        assert found == {p.entity_id: p for p in members}
        # the room exists: Bob's call changes nothing, not even the participants
        bobs = room.model_copy(update={"owner_id": "bob"})
        bob = [Participant(room_id="lounge", entity_id="bob")]
        assert await store.create_room_with(bobs, bob) is False
        assert await store.get_room("lounge") == room
        assert {p.entity_id for p in await store.get_participants("lounge")} == {"ada", AGENT}
        # of concurrent calls, one creates the room, and its members are the ones in it
        rivals = [
            store.create_room_with(
                Room(id="race", agent_id=AGENT, owner_id=user),
                [Participant(room_id="race", entity_id=user)],
            )
            for user in ("ada", "bob", "cy", "dee")
        ]
        results = await asyncio.gather(*rivals)
        assert sorted(results) == [False, False, False, True]
        winner = ("ada", "bob", "cy", "dee")[results.index(True)]
        stored = await store.get_room("race")
        assert stored is not None
        assert stored.owner_id == winner
        assert [p.entity_id for p in await store.get_participants("race")] == [winner]

    async def test_read_turn_returns_what_the_reads_it_stands_for_return(
        self, store: MemoryStore
    ) -> None:
        # Ada's room (5 messages of hers and a fact; the agent muted there) and Bob's
        for n in range(5):
            await store.create_memory(_memory(n, room="ada-room", entity="ada"))
        fact = _memory(9, room="ada-room", entity="ada", type=MemoryType.FACT)
        await store.create_memory(fact)
        await store.create_memory(_memory(20, room="bob-room", entity="bob"))
        await store.create_memory(_memory(21, room="ada-room", entity="ada", agent=OTHER_AGENT))
        await store.upsert_participant(
            Participant(room_id="ada-room", entity_id=AGENT, state=ParticipantState.MUTED)
        )
        await store.upsert_participant(Participant(room_id="ada-room", entity_id="ada"))
        goals = [
            Goal(id="g1", agent_id=AGENT, room_id="ada-room", name="a", created_at=T0 + 2),
            Goal(id="g2", agent_id=AGENT, room_id="bob-room", name="b", created_at=T0 + 1),
            Goal(id="g3", agent_id=AGENT, name="c", status=GoalStatus.DONE, created_at=T0),
            Goal(id="g4", agent_id=OTHER_AGENT, room_id="ada-room", name="d", created_at=T0),
            Goal(id="g5", agent_id=AGENT, name="e", created_at=T0 + 3),  # of no room
        ]
        for goal in goals:
            await store.upsert_goal(goal)
        await store.set_cache("open:ada-room", 2)
        await store.set_cache("open:bob-room", 1, ttl_s=0.01)
        await asyncio.sleep(0.05)
        keys = ["open:ada-room", "open:bob-room", "open:nowhere", "open:ada-room"]
        in_rooms = {"ada-room": ["g1", "g5"], "bob-room": ["g2", "g5"], "empty-room": ["g5"]}
        for room, limit in (("ada-room", 3), ("bob-room", 32), ("empty-room", 32)):
            reads = await store.read_turn(
                agent_id=AGENT, room_id=room, history_limit=limit, cache_keys=keys
            )
            history = await store.get_memories(
                agent_id=AGENT, room_id=room, type=MemoryType.MESSAGE, limit=limit
            )
            assert _ids(reads.history) == _ids(history)
            for read, direct in zip(reads.history, history, strict=True):
                _assert_same(read, direct)
            assert reads.participant == await store.get_participant(room, AGENT)
            # in progress, of this room or of none, oldest first
            assert [g.id for g in reads.goals] == in_rooms[room]
            every = await store.get_goals(agent_id=AGENT, status=GoalStatus.IN_PROGRESS)
            assert reads.goals == [g for g in every if g.id in in_rooms[room]]
            assert reads.cache == {"open:ada-room": 2}  # expired and absent left out
        ada = await store.read_turn(agent_id=AGENT, room_id="ada-room", history_limit=3)
        assert _ids(ada.history) == [f"m-{AGENT}-{n}" for n in (2, 3, 4)]  # oldest first
        assert ada.participant is not None
        assert ada.participant.state is ParticipantState.MUTED
        assert ada.cache == {}
        bob = await store.read_turn(agent_id=AGENT, room_id="bob-room", history_limit=0)
        assert bob.history == []
        assert bob.participant is None

    async def test_create_memory_reading_turn_reads_as_read_turn_does_after_the_write(
        self, store: MemoryStore
    ) -> None:
        # Ada's room: three messages; Bob's room: one; the agent muted in Ada's room
        for n in range(3):
            await store.create_memory(_memory(n, room="ada-room", entity="ada"))
        await store.create_memory(_memory(10, room="bob-room", entity="bob"))
        await store.upsert_participant(
            Participant(room_id="ada-room", entity_id=AGENT, state=ParticipantState.MUTED)
        )
        await store.upsert_goal(Goal(id="g1", agent_id=AGENT, room_id="ada-room", name="a"))
        await store.set_cache("open:ada-room", 2)
        keys = ("open:ada-room", "run:ada-5")
        turn = TurnQuery(agent_id=AGENT, room_id="ada-room", history_limit=3, cache_keys=keys)
        new = _memory(5, room="ada-room", entity="ada", embedding=[1.0, 0.0])
        lease = {"owner": "me", "until": 9.5}
        created, reads = await store.create_memory_reading_turn(
            new, {"run:ada-5": lease}, turn, ttl_s=60
        )
        assert created
        assert reads is not None
        after = await store.read_turn(
            agent_id=AGENT, room_id="ada-room", history_limit=3, cache_keys=keys
        )
        assert (
            _ids(reads.history)
            == _ids(after.history)
            == [
                f"m-{AGENT}-1",
                f"m-{AGENT}-2",
                new.id,
            ]
        )
        for read, direct in zip(reads.history, after.history, strict=True):
            assert (read.id, read.content, read.created_at) == (
                direct.id,
                direct.content,
                direct.created_at,
            )
        assert reads.participant == after.participant
        assert reads.participant is not None
        assert reads.participant.state is ParticipantState.MUTED
        assert reads.goals == after.goals
        assert [g.id for g in reads.goals] == ["g1"]
        assert reads.cache == after.cache == {"open:ada-room": 2, "run:ada-5": lease}
        assert await store.get_cache("run:ada-5") == lease
        # a message stored with an earlier time takes its place in the history
        late = _memory(4, room="ada-room", entity="ada", created_at=T0 + 1.5)
        created, reads = await store.create_memory_reading_turn(late, {}, turn)
        assert created
        assert reads is not None
        assert _ids(reads.history) == [late.id, f"m-{AGENT}-2", new.id]
        # Bob's turn reads only his room: nothing of Ada's
        bobs = TurnQuery(agent_id=AGENT, room_id="bob-room", history_limit=32)
        created, reads = await store.create_memory_reading_turn(
            _memory(11, room="bob-room", entity="bob"), {}, bobs
        )
        assert created
        assert reads is not None
        assert _ids(reads.history) == [f"m-{AGENT}-10", f"m-{AGENT}-11"]
        assert reads.participant is None
        assert reads.cache == {}
        # stored before: nothing written, nothing read
        assert await store.create_memory_reading_turn(new, {"run:again": 1}, turn) == (
            False,
            None,
        )
        assert await store.get_cache("run:again") is None
        # a live entry in the way (another process's lease): stored, kept, not read
        await store.set_cache("run:ada-6", {"owner": "other"})
        sixth = _memory(6, room="ada-room", entity="ada")
        assert await store.create_memory_reading_turn(
            sixth, {"run:ada-6": {"owner": "me"}}, turn
        ) == (False, None)
        assert await store.get_memory(sixth.id) is not None
        assert await store.get_cache("run:ada-6") == {"owner": "other"}
        # a memory of another type or room is stored but not in the history read
        fact = _memory(7, room="ada-room", entity="ada", type=MemoryType.FACT)
        created, reads = await store.create_memory_reading_turn(fact, {}, turn)
        assert created
        assert reads is not None
        assert fact.id not in _ids(reads.history)

    async def test_goals(self, store: MemoryStore) -> None:
        goals = [
            Goal(id="g1", agent_id=AGENT, room_id="r1", name="a", created_at=T0 + 2),
            Goal(
                id="g2",
                agent_id=AGENT,
                room_id="r2",
                name="b",
                created_at=T0 + 1,
                objectives=[Objective(description="x", completed=True)],
            ),
            Goal(
                id="g3",
                agent_id=AGENT,
                room_id="r1",
                name="c",
                status=GoalStatus.DONE,
                created_at=T0 + 3,
                metadata={"k": 1},
            ),
            Goal(id="g4", agent_id=OTHER_AGENT, room_id="r1", name="d", created_at=T0),
        ]
        for goal in goals:
            await store.upsert_goal(goal)
        assert await store.get_goal("g2") == goals[1]
        assert await store.get_goal("nope") is None

        async def ids(**filters: Any) -> list[str]:
            return [g.id for g in await store.get_goals(**filters)]

        assert await ids(agent_id=AGENT) == ["g2", "g1", "g3"]
        assert await ids(agent_id=AGENT, room_id="r1") == ["g1", "g3"]
        assert await ids(agent_id=AGENT, status=GoalStatus.IN_PROGRESS) == ["g2", "g1"]
        assert await ids(agent_id=AGENT, room_id="r1", status=GoalStatus.DONE) == ["g3"]
        assert await ids(agent_id=OTHER_AGENT) == ["g4"]
        failed = goals[0].model_copy(update={"status": GoalStatus.FAILED})
        await store.upsert_goal(failed)
        assert await store.get_goal("g1") == failed
        assert await ids(agent_id=AGENT, status=GoalStatus.IN_PROGRESS) == ["g2"]

    async def test_tasks(self, store: MemoryStore) -> None:
        tasks = [
            Task(id="t1", agent_id=AGENT, name="a", tags=["x", "y"], due_at=None, created_at=T0),
            Task(id="t2", agent_id=AGENT, name="b", tags=["x"], due_at=T0 + 50, created_at=T0),
            Task(id="t3", agent_id=AGENT, name="c", tags=["y"], due_at=T0 + 10, created_at=T0),
            Task(id="t4", agent_id=AGENT, name="d", tags=[], due_at=None, created_at=T0 - 1),
            Task(id="t5", agent_id=OTHER_AGENT, name="e", tags=["x"], created_at=T0),
        ]
        for task in tasks:
            await store.upsert_task(task)

        async def ids(tags: Sequence[str] = ()) -> list[str]:
            return [t.id for t in await store.get_tasks(agent_id=AGENT, tags=tags)]

        assert await ids() == ["t3", "t2", "t4", "t1"]
        assert await ids(["x"]) == ["t2", "t1"]
        assert await ids(["x", "y"]) == ["t1"]
        assert await ids(["z"]) == []
        assert (await store.get_tasks(agent_id=AGENT, tags=["y"]))[0] == tasks[2]
        await store.upsert_task(tasks[0].model_copy(update={"due_at": T0 + 1}))
        assert await ids() == ["t1", "t3", "t2", "t4"]
        assert await store.delete_task("t1") is True
        assert await store.delete_task("t1") is False
        assert await ids(["x"]) == ["t2"]
        assert await store.get_task("t3", agent_id=AGENT) == tasks[2]
        assert await store.get_task("t5", agent_id=AGENT) is None  # another agent's
        assert await store.get_task("t1", agent_id=AGENT) is None  # deleted
        repeating = tasks[2].model_copy(
            update={"worker": "w", "interval_s": 2.5, "payload": {"n": 1}, "attempts": 2}
        )
        await store.upsert_task(repeating)
        assert await store.get_task("t3", agent_id=AGENT) == repeating
        due = await store.get_due_tasks(agent_id=AGENT, before=T0 + 10)
        assert [t.id for t in due] == ["t3"]  # t2 is later, t4 has no due time
        assert [t.id for t in await store.get_due_tasks(agent_id=AGENT, before=T0 + 60)] == [
            "t3",
            "t2",
        ]
        assert await store.get_due_tasks(agent_id=OTHER_AGENT, before=T0 + 60) == []

    # ---- cache and logs --------------------------------------------------------------------

    async def test_logs(self, store: MemoryStore) -> None:
        for n in range(6):
            await store.log(
                agent_id=AGENT, room_id="r1" if n % 2 else None, type=f"t{n}", body={"n": n}
            )
        await store.log(agent_id=OTHER_AGENT, room_id="r1", type="other", body={})
        logs = await store.get_logs(agent_id=AGENT)
        assert [entry["type"] for entry in logs] == [f"t{n}" for n in range(6)]
        assert logs[1]["body"] == {"n": 1}
        assert logs[1]["room_id"] == "r1"
        assert {"type", "room_id", "body", "created_at"} <= set(logs[0])
        times = [entry["created_at"] for entry in logs]
        assert times == sorted(times)
        assert [e["type"] for e in await store.get_logs(agent_id=AGENT, limit=2)] == ["t4", "t5"]
        assert [e["type"] for e in await store.get_logs(agent_id=AGENT, room_id="r1")] == [
            "t1",
            "t3",
            "t5",
        ]
        assert [e["type"] for e in await store.get_logs(agent_id=OTHER_AGENT)] == ["other"]
        assert await store.get_logs(agent_id=AGENT, limit=0) == []
