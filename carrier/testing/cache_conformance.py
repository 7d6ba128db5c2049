"""Cache checks of the store conformance suite: values, expiry, and the atomic
operations (``add_cache``, ``compare_and_set_cache``, ``increment_cache``,
``list_cache``) that leases and plugin state build on.

``MemoryStoreConformance`` inherits them; they need the same ``store`` fixture.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from carrier.errors import StoreError
from carrier.protocols import MemoryStore

__all__ = ["CacheConformance"]


class CacheConformance:
    """The cache as a key-value store with expiry and atomic updates."""

    async def test_cache_round_trip(self, store: MemoryStore) -> None:
        values: list[Any] = [{"a": [1, 2.5, "x", None, True]}, [1, 2], "text", 42, 4.25, False]
        for n, value in enumerate(values):
            await store.set_cache(f"k{n}", value)
        for n, value in enumerate(values):
            assert await store.get_cache(f"k{n}") == value
        assert await store.get_cache("missing") is None
        await store.set_cache("k0", {"replaced": True})
        assert await store.get_cache("k0") == {"replaced": True}
        assert await store.delete_cache("k0") is True
        assert await store.delete_cache("k0") is False
        assert await store.get_cache("k0") is None
        with pytest.raises(StoreError, match="JSON"):
            await store.set_cache("bad", {"x": object()})

    async def test_cache_ttl(self, store: MemoryStore) -> None:
        await store.set_cache("short", "v", ttl_s=0.05)
        await store.set_cache("long", "v", ttl_s=60)
        assert await store.get_cache("short") == "v"
        await asyncio.sleep(0.12)
        assert await store.get_cache("short") is None
        assert await store.get_cache("long") == "v"
        await store.set_cache("short", "again")  # no ttl: never expires
        await asyncio.sleep(0.06)
        assert await store.get_cache("short") == "again"

    async def test_add_cache_once(self, store: MemoryStore) -> None:
        assert await store.add_cache("lease", {"owner": "a"})
        assert not await store.add_cache("lease", {"owner": "b"})
        assert await store.get_cache("lease") == {"owner": "a"}
        assert await store.add_cache("brief", 1, ttl_s=0.05)
        await asyncio.sleep(0.12)
        assert await store.add_cache("brief", 2)  # expired counts as absent
        assert await store.get_cache("brief") == 2

    async def test_add_cache_race_has_one_winner(self, store: MemoryStore) -> None:
        results = await asyncio.gather(*(store.add_cache("race", n) for n in range(10)))
        assert sum(results) == 1
        assert await store.get_cache("race") == results.index(True)

    async def test_compare_and_set_cache(self, store: MemoryStore) -> None:
        assert not await store.compare_and_set_cache("cas", None, 1)  # absent: use add
        await store.set_cache("cas", {"owner": "a", "n": [1, 2]})
        assert not await store.compare_and_set_cache("cas", {"owner": "b", "n": [1, 2]}, 2)
        assert await store.compare_and_set_cache("cas", {"n": [1, 2], "owner": "a"}, {"v": 2})
        assert await store.get_cache("cas") == {"v": 2}
        assert await store.compare_and_set_cache("cas", {"v": 2}, None)  # deletes
        assert await store.get_cache("cas") is None
        await store.set_cache("gone", "x", ttl_s=0.05)
        await asyncio.sleep(0.12)
        assert not await store.compare_and_set_cache("gone", "x", "y")

    async def test_compare_and_set_cache_race(self, store: MemoryStore) -> None:
        await store.set_cache("cas-race", 0)
        results = await asyncio.gather(
            *(store.compare_and_set_cache("cas-race", 0, n) for n in range(1, 9))
        )
        assert sum(results) == 1
        assert await store.get_cache("cas-race") == results.index(True) + 1

    async def test_increment_cache(self, store: MemoryStore) -> None:
        assert await store.increment_cache("count") == 1
        assert await store.increment_cache("count", 5) == 6
        totals = await asyncio.gather(*(store.increment_cache("count") for _ in range(20)))
        assert sorted(totals) == list(range(7, 27))
        assert await store.get_cache("count") == 26
        await store.set_cache("text", "x")
        with pytest.raises(StoreError, match="integer"):
            await store.increment_cache("text")
        assert await store.increment_cache("brief", ttl_s=0.05) == 1
        await asyncio.sleep(0.12)
        assert await store.increment_cache("brief") == 1

    async def test_list_cache(self, store: MemoryStore) -> None:
        for key in ("run:a:2", "run:a:1", "run:b:1", "other"):
            await store.set_cache(key, {"k": key})
        await store.set_cache("run:a:3", "old", ttl_s=0.05)
        await asyncio.sleep(0.12)
        assert await store.list_cache("run:a:") == [
            ("run:a:1", {"k": "run:a:1"}),
            ("run:a:2", {"k": "run:a:2"}),
        ]
        assert [k for k, _ in await store.list_cache("run:", limit=2)] == ["run:a:1", "run:a:2"]
        assert await store.list_cache("none:") == []
