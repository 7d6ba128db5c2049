"""The kernel's ``InMemoryStore``, and the kernel's defaults of the optional store methods,
pass the MemoryStore conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.stores import MemoryStore
from carrier.testing.conformance import MemoryStoreConformance


class TestInMemoryStore(MemoryStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemoryStore]:
        async with InMemoryStore() as store:
            yield store


class KernelDefaults(InMemoryStore):
    """A store that implements only the abstract methods, as a third party's may: the
    kernel's defaults of the optional ones must pass the suite too."""

    get_memories_by_id = MemoryStore.get_memories_by_id
    create_memory_with_cache = MemoryStore.create_memory_with_cache


class TestKernelDefaults(MemoryStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemoryStore]:
        async with KernelDefaults() as store:
            yield store
