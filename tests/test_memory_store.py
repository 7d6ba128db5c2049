"""The kernel's ``InMemoryStore`` passes the MemoryStore conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.testing.conformance import MemoryStoreConformance


class TestInMemoryStore(MemoryStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemoryStore]:
        async with InMemoryStore() as store:
            yield store
