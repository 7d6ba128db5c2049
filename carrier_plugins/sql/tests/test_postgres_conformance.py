"""``PostgresStore`` passes the kernel's MemoryStore conformance suite unchanged,
each test on a fresh database of a real PostgreSQL server with pgvector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from carrier_plugin_sql.postgres import PostgresStore

from carrier.testing.conformance import MemoryStoreConformance


class TestPostgres(MemoryStoreConformance):
    @pytest.fixture
    async def store(self, database: str) -> AsyncIterator[PostgresStore]:
        async with PostgresStore(database) as store:
            yield store
