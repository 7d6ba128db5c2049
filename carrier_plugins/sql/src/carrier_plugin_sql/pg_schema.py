"""The schema on PostgreSQL: the same SQLModel tables compiled for PostgreSQL.

The tables, their indexes, the schema version and its migrations are those of
:mod:`.schema`.
PostgreSQL has no triggers here: the queue of unanswered messages is kept by the
store's own transactions (:mod:`.postgres`). The embedding column is pgvector's
``vector``; its dimension and the HNSW (cosine) index are fixed by the first
embedding (:func:`fix_dimension`), the index with the store's ``m`` and
``ef_construction`` (:class:`HnswOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from carrier.errors import StoreError
from carrier_plugin_sql.schema import SCHEMA_VERSION, TABLES, scope_migration

__all__ = [
    "DIMENSION_KEY",
    "HNSW_INDEX",
    "SCHEMA_LOCK",
    "HnswOptions",
    "fix_dimension",
    "open_schema",
    "postgres_ddl",
]

DIMENSION_KEY = "embedding_dimension"
#: Serializes schema changes between processes (any constant works).
SCHEMA_LOCK = 0x63617272  # "carr"
HNSW_INDEX = "ix_embeddings_hnsw"


@dataclass(frozen=True, slots=True)
class HnswOptions:
    """Build options of the HNSW index (pgvector's defaults); they take effect when
    the index is created, and an existing index keeps its own.

    Attributes:
        m: Links per node.
        ef_construction: Candidate list size while building (at least ``2 * m``).
    """

    m: int = 16
    ef_construction: int = 128


def postgres_ddl() -> list[str]:
    """``CREATE`` statements for the current schema, in PostgreSQL's dialect."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    statements = [str(CreateTable(table).compile(dialect=dialect)).strip() for table in TABLES]
    for table in TABLES:
        statements.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: i.name or "")
        )
    return statements


async def _create(conn: Any) -> None:
    for statement in postgres_ddl():
        await conn.execute(statement)


async def _scopes(conn: Any) -> None:
    # Every embedding row is rewritten: building the HNSW index again afterwards
    # (fix_dimension, at the end of open_schema) is much faster than inserting each
    # new row version into it.
    await conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
    for statement in scope_migration("postgresql"):
        await conn.execute(statement)


async def _nothing(conn: Any) -> None:
    """Version 3 changed only SQLite's cache table (``WITHOUT ROWID``)."""


#: ``version -> step`` from ``version - 1``; an empty database gets the current
#: schema at once (:func:`postgres_ddl`).
_MIGRATIONS = {2: _scopes, 3: _nothing}


async def open_schema(conn: Any, where: str, *, hnsw: HnswOptions) -> int | None:
    """Create or migrate the schema in ``conn``'s current schema; the recorded
    embedding dimension. ``hnsw`` shapes the HNSW index if it is created here.

    Raises:
        StoreError: The database holds other tables, or is newer than this code.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        tables = {
            row[0]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        clashing = sorted(tables & {table.name for table in TABLES})
        if "carrier_meta" not in tables and clashing:
            raise StoreError(
                f"The database {where} holds tables named like Carrier's that are not "
                f"Carrier's ({', '.join(clashing)}, but no carrier_meta table); refusing to "
                f"change them. Point CARRIER_DATABASE_URL at another database."
            )
        if "carrier_meta" not in tables:  # other applications' tables may share the database
            found = 0
        else:
            value = await conn.fetchval(
                "SELECT value FROM carrier_meta WHERE key = 'schema_version'"
            )
            found = int(value) if value is not None else 0
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"The database {where} has schema version {found}, newer than the version "
                f"{SCHEMA_VERSION} this carrier-plugin-sql understands; it was written by a "
                f"newer release. Upgrade with: pip install -U carrier-plugin-sql (or point "
                f"CARRIER_DATABASE_URL at another database)."
            )
        if found == 0:
            await _create(conn)
        else:
            for version in range(found + 1, SCHEMA_VERSION + 1):
                await _MIGRATIONS[version](conn)
        if found != SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO carrier_meta (key, value) VALUES ('schema_version', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(SCHEMA_VERSION),
            )
        value = await conn.fetchval("SELECT value FROM carrier_meta WHERE key = $1", DIMENSION_KEY)
        if value is not None:
            await fix_dimension(conn, int(value), hnsw=hnsw)
    return None if value is None else int(value)


async def fix_dimension(conn: Any, dimension: int, *, hnsw: HnswOptions) -> None:
    """Give the ``vector`` column its dimension and the HNSW cosine index (idempotent;
    run inside a transaction). On a table already full of embeddings the build takes
    a while and uses up to ``maintenance_work_mem``."""
    typmod = await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = 'embeddings'::regclass AND attname = 'vector'"
    )
    if typmod != dimension:
        await conn.execute(
            f"ALTER TABLE embeddings ALTER COLUMN vector TYPE vector({int(dimension)})"
        )
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON embeddings "
        f"USING hnsw (vector vector_cosine_ops) "
        f"WITH (m = {int(hnsw.m)}, ef_construction = {int(hnsw.ef_construction)})"
    )
