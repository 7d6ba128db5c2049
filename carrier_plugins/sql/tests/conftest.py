"""A PostgreSQL server with pgvector for the session (see ``carrier_plugin_sql.testing``)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from carrier_plugin_sql.testing import fresh_database, local_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server with pgvector (its ``postgres`` database)."""
    # not under pytest's basetemp: another pytest run may rotate that away mid-session
    with tempfile.TemporaryDirectory() as tmp, local_postgres(Path(tmp) / "pgdata") as server:
        yield server.url


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database; dropped after the test."""
    async with fresh_database(postgres_url) as url:
        yield url
