"""``SqlStore`` passes the kernel's MemoryStore conformance suite unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from carrier_plugin_sql.store import SqlStore

from carrier.testing.conformance import MemoryStoreConformance


class TestSqliteFile(MemoryStoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqlStore]:
        async with SqlStore(f"sqlite:///{tmp_path}/carrier.db") as store:
            yield store


class TestSqliteMemory(MemoryStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[SqlStore]:
        async with SqlStore("sqlite://:memory:") as store:
            yield store


class TestSqliteVecSearch(MemoryStoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqlStore]:
        async with SqlStore(
            f"sqlite:///{tmp_path}/carrier.db", vector_search="sqlite-vec"
        ) as store:
            yield store
