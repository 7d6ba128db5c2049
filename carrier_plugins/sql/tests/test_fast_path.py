"""Inline calls, the locked-file fallback, the WAL's bound and the memory cache."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import pytest
import sqlean
from carrier_plugin_sql import db
from carrier_plugin_sql.store import SqlStore

from carrier.types import Content, Memory


def _memory(n: int, **fields: object) -> Memory:
    fields.setdefault("content", Content(text=f"m {n}"))
    return Memory(id=f"m{n}", agent_id="a", entity_id="u", room_id="r", **fields)


async def test_write_waits_for_another_writer_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        other = sqlean.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.005)

            ticker = asyncio.create_task(tick())
            asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
            assert await store.create_memory(_memory(1))
            ticker.cancel()
            assert ticks >= 10  # the loop ran while the write waited in the worker
            assert [m.id for m in await store.get_memories(agent_id="a", room_id="r")] == ["m1"]
            assert await store.create_memory(_memory(2))  # and inline again afterwards
        finally:
            other.close()


async def test_wal_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "_CHECKPOINT_CHANGES", 50)
    monkeypatch.setattr(db, "_RESTART_FRAMES", 500)
    path = tmp_path / "x.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        for n in range(1500):
            await store.create_memory(_memory(n))
            if n % 50 == 49 and (checkpoint := store._db._checkpoint) is not None:
                # Writes go on while a checkpoint runs, so how far the WAL grows past
                # 500 frames depends on when its thread is scheduled (a stalled one let
                # it reach 57 MB under CI load); waiting now and then makes that fixed.
                await asyncio.wrap_future(checkpoint)
        checkpoint = store._db._checkpoint
        assert checkpoint is not None
        await asyncio.wrap_future(checkpoint)
        # Without restarts the WAL grows to 30-66 MB (~16,000 pages are written); with
        # them, it starts over in its file every 500 frames or so.
        wal_bytes = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
        assert wal_bytes < 16_000 * 4096 / 3, wal_bytes
        assert await store.count_memories(agent_id="a") == 1500


async def test_row_cache_sees_deletes_from_another_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    async with SqlStore(url) as store, SqlStore(url) as other:
        for n in range(5):
            await store.create_memory(_memory(n, created_at=1000.0 + n))
        assert len(await store.get_memories(agent_id="a", room_id="r")) == 5
        assert await other.delete_memory("m2")
        assert await store.delete_memory("m3")
        found = await store.get_memories(agent_id="a", room_id="r")
        assert [m.id for m in found] == ["m0", "m1", "m4"]
        assert await store.get_memory("m2") is None


async def test_values_json_cannot_carry_round_trip() -> None:
    async with SqlStore("sqlite://:memory:") as store:
        odd = [
            _memory(1, created_at=math.inf, metadata={"x": math.nan}),
            _memory(2, created_at=1795486264.7781022, metadata={"big": 2**70, "s": "\ud800"}),
            _memory(3, created_at=1.0, content=Content(text='é \u2028 "q" \\', extra={"k": [1.5]})),
        ]
        for memory in odd:
            assert await store.create_memory(memory)
        found = await store.get_memories(agent_id="a", room_id="r")
        assert [m.id for m in found] == ["m3", "m2", "m1"]
        by_id = {m.id: m for m in found}
        assert by_id["m1"].created_at == math.inf
        assert math.isnan(by_id["m1"].metadata["x"])
        assert by_id["m2"] == odd[1]
        assert by_id["m3"] == odd[2]
        assert by_id["m3"].content.model_fields_set == odd[2].content.model_fields_set


async def test_a_stored_memory_reads_back_as_a_fresh_connection_reads_it(tmp_path: Path) -> None:
    # The store keeps the row of each memory it stores, built in Python; it must be
    # what SQLite builds for a reader that never saw the memory.
    url = f"sqlite:///{tmp_path}/x.db"
    memories = [
        _memory(1, created_at=1.0000000000000002, world_id="w", unique=True),
        _memory(2, created_at=2.5, metadata={"big": 2**70, "s": "\ud800", "n": None}),
        _memory(3, created_at=3.0, content=Content(text='é \u2028 "q" \\', extra={"k": [1.5]})),
        _memory(4, created_at=4.0, embedding=[0.1, 0.2, 0.3]),
    ]
    async with SqlStore(url) as writer:
        for memory in memories:
            assert await writer.create_memory(memory)
        cached = await writer.get_memories(agent_id="a", room_id="r")
        async with SqlStore(url) as reader:
            fresh = await reader.get_memories(agent_id="a", room_id="r")
    assert [m.model_dump() for m in cached] == [m.model_dump() for m in fresh]
    assert [m.id for m in cached] == ["m1", "m2", "m3", "m4"]
    assert cached[3].embedding == pytest.approx([0.1, 0.2, 0.3], abs=1e-7)


async def test_a_search_sees_what_another_connection_wrote_since_the_last(
    tmp_path: Path,
) -> None:
    """Searches skip their catch-up read while nothing was written (``data_version``);
    a write by another connection in between must still be found."""
    url = f"sqlite:///{tmp_path}/x.db"
    vector = [1.0, 0.0, 0.0]

    def memory(n: int) -> Memory:
        return Memory(
            id=f"m{n}",
            agent_id="a",
            entity_id="u",
            room_id="r",
            content=Content(text=f"m{n}"),
            embedding=vector,
        )

    async with SqlStore(url) as mine, SqlStore(url) as other:
        await mine.create_memory(memory(1))
        first = await mine.search_memories(agent_id="a", embedding=vector, limit=10)
        again = await mine.search_memories(agent_id="a", embedding=vector, limit=10)
        assert [h.memory.id for h in first] == [h.memory.id for h in again] == ["m1"]
        await other.create_memory(memory(2))
        found = await mine.search_memories(agent_id="a", embedding=vector, limit=10)
        assert sorted(h.memory.id for h in found) == ["m1", "m2"]
