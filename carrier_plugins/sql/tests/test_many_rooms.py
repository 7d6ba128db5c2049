"""Many active rooms on one SQLite store: the memory cache holds every room's history
window (bounded by bytes, not entries), so no turn reads another room's evicted history
back from the table, and a long run's memory stops growing once the caches are full."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.types import IncomingMessage, MemoryType, ModelRequest, ModelResponse


class Notes(Model):
    """Answers "Noted." and keeps nothing (the testing fakes keep every request)."""

    name = "notes"

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="Noted.", model=self.name)


def _agent(store: SqlStore, **settings: object) -> AgentRuntime:
    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None, **settings))
    model = Notes()
    return AgentRuntime(
        Character(name="Ada"),
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )


def _message(room: int, turn: int) -> IncomingMessage:
    return IncomingMessage(
        text=f"message {turn} from user {room}", user_id=f"user-{room}", room_id=f"room-{room}"
    )


async def test_a_thousand_interleaved_rooms_never_read_their_history_back(
    tmp_path: Path,
) -> None:
    rooms, turns = 1000, 4
    async with SqlStore(f"sqlite:///{tmp_path / 'agent.db'}") as store, _agent(store) as agent:
        for turn in range(turns - 1):
            for room in range(rooms):
                await agent.handle(_message(room, turn))
        before = store.memory_cache_stats()
        for room in range(rooms):  # each turn reads its room's whole window (6 messages)
            await agent.handle(_message(room, turns - 1))
        after = store.memory_cache_stats()
        history = await store.get_memories(
            agent_id=agent.agent_id, room_id="room-7", type=MemoryType.MESSAGE, limit=100
        )
    # 1,000 rooms x 8 messages is past the old 4,096-entry cache, within the byte budget
    assert after["memories"] >= rooms * 2 * turns
    assert after["bytes"] <= after["max_bytes"]
    assert after["fetched"] - before["fetched"] == 0
    # and each room holds only its own user's messages and the answers to them
    assert {m.entity_id for m in history} == {"user-7", agent.agent_id}
    assert [m.content.text for m in history if m.entity_id == "user-7"] == [
        f"message {turn} from user 7" for turn in range(turns)
    ]


async def test_a_small_budget_is_kept_and_reads_back_what_it_dropped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    async with SqlStore(url, memory_cache_mb=0.05) as store, _agent(store) as agent:
        for turn in range(3):
            for room in range(50):
                await agent.handle(_message(room, turn))
        stats = store.memory_cache_stats()
        history = await store.get_memories(
            agent_id=agent.agent_id, room_id="room-0", type=MemoryType.MESSAGE, limit=100
        )
    assert stats["bytes"] <= stats["max_bytes"] == int(0.05 * 2**20)
    assert stats["memories"] < 50 * 6  # not all fit
    assert stats["fetched"] > 0  # what was dropped came back from the table, intact
    assert [m.content.text for m in history] == [
        text for turn in range(3) for text in (f"message {turn} from user 0", "Noted.")
    ]


def _allocated_blocks() -> int:
    """Python's live heap blocks after a full collection: unlike the process's RSS, this
    moves only with what the program holds, not with the allocator's arenas (RSS in the
    whole suite's process jumped by 11 MiB at random points)."""
    gc.collect()
    return sys.getallocatedblocks()


async def test_a_long_run_stops_growing_once_the_caches_are_full(tmp_path: Path) -> None:
    """20,000 messages over 400 rooms with small cache budgets (4 MiB of memories, 2 MiB
    of turns, 2 MiB of SQLite pages per connection; all full after ~2,000 messages): the
    live heap over the second half grows by less than a tenth of what it grew while
    they filled (about 2% measured alone). With budgets large
    enough never to fill, the same run grows by ~100,000 blocks every 2,000 messages."""
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    samples: list[int] = []
    async with (
        SqlStore(url, memory_cache_mb=4, page_cache_mb=2) as store,
        _agent(store, turn_cache_mb=2) as agent,
    ):
        for turn in range(50):
            replies = [await agent.handle(_message(room, turn)) for room in range(400)]
            if turn % 5 == 4:  # what is still being evaluated is not what is kept
                await asyncio.gather(*(reply.evaluated() for reply in replies))
                samples.append(_allocated_blocks())
        stats = store.memory_cache_stats()
    assert stats["bytes"] <= stats["max_bytes"]
    half = samples[len(samples) // 2 - 1]
    filling = half - samples[0]  # while the caches fill up to their budgets
    growth = max(samples[len(samples) // 2 :]) - half
    # Relative, not absolute: the caches approach their budgets gradually, and in the
    # whole suite's process the count moves by a few thousand blocks (5,463 against
    # 2,440 alone, once); unbounded caches grow as much in the second half as in the first.
    assert growth < filling / 10, (
        f"the heap grew {growth} blocks after the caches were full ({filling} while "
        f"they filled): {samples}"
    )
