"""Opening a SQLite file's schema: its version checked, the file created or migrated
when it must be.

The tables' definitions (:mod:`carrier_plugin_sql.schema`: SQLModel and SQLAlchemy,
about 0.4 s to import) load only then, so a store over an up-to-date file, as every
``carrier chat`` after the first, opens without them.
"""

from __future__ import annotations

from typing import Any

from carrier.errors import StoreError
from carrier_plugin_sql.db import transaction
from carrier_plugin_sql.ops import read_dimension

__all__ = ["SCHEMA_VERSION", "open_schema"]

#: The version this code writes. Bump it and add a step to ``schema._MIGRATIONS``.
SCHEMA_VERSION = 3


def open_schema(conn: Any, where: str) -> int | None:
    """Create or migrate the schema (run in the store's connection); the recorded
    embedding dimension."""

    def version() -> int | None:
        tables = {
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(row[0]).startswith("sqlite_")
        }
        if "carrier_meta" not in tables:
            return None if tables else 0
        row = conn.execute("SELECT value FROM carrier_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    found = version()
    if found is None:
        raise StoreError(
            f"The database {where} holds tables that are not Carrier's (no carrier_meta "
            f"table); refusing to change it. Point CARRIER_DATABASE_URL at a new file."
        )
    if found != SCHEMA_VERSION:
        from carrier_plugin_sql.schema import migrate

        with transaction(conn):
            found = version() or 0  # another process may have migrated meanwhile
            migrate(conn.execute, found, where=where)
            conn.execute(
                "INSERT INTO carrier_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
    return read_dimension(conn)
