"""Carrier plugin: durable memory store on SQLite or PostgreSQL. Entry point ``sql``.

Registers the ``sqlite`` store scheme (``CARRIER_DATABASE_URL=sqlite:///...``) and
the ``postgresql`` / ``postgres`` schemes (extra ``postgres``: asyncpg, pgvector).
Only hook implementations live here: the settings class is declared as an import
string, and SQLModel, SQLAlchemy, aiosqlite and numpy load when a store is
built, so discovery stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import MemoryStore
    from carrier.registry import Registry
    from carrier_plugin_sql.settings import SqlSettings


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    settings.add("sql", "carrier_plugin_sql.settings:SqlSettings")


@carrier.hookimpl
def carrier_register_stores(stores: Registry[MemoryStore]) -> None:
    for scheme in ("sqlite", "sqlite+aiosqlite"):
        stores.add(
            scheme,
            build_store,
            settings="sql",
            description="Durable SQLite store with exact vector search (carrier-plugin-sql).",
        )
    for scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        stores.add(
            scheme,
            build_postgres_store,
            settings="sql",
            description="PostgreSQL store with pgvector search (carrier-plugin-sql[postgres]).",
        )


def build_store(settings: SqlSettings | None = None, *, url: str) -> MemoryStore:
    """Build an unopened ``SqlStore`` for ``url``.

    Args:
        settings: The ``sql`` namespace's settings; read from the environment if ``None``.
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``.

    Returns:
        The store; open it with ``async with``.
    """
    from carrier_plugin_sql.settings import SqlSettings  # drivers load here only
    from carrier_plugin_sql.store import SqlStore

    settings = settings if settings is not None else SqlSettings()
    return SqlStore(
        url,
        vector_search=settings.vector_search,
        busy_timeout_s=settings.busy_timeout_s,
        write_retry_s=settings.write_retry_s,
        memory_cache_mb=settings.memory_cache_mb,
        page_cache_mb=settings.page_cache_mb,
    )


def build_postgres_store(settings: SqlSettings | None = None, *, url: str) -> MemoryStore:
    """Build an unopened ``PostgresStore`` for ``url``.

    Args:
        settings: The ``sql`` namespace's settings (``pool_*`` and ``hnsw_*``); read
            from the environment if ``None``.
        url: ``postgresql://user:password@host:5432/database`` (or ``postgres://``,
            ``postgresql+asyncpg://``).

    Returns:
        The store; open it with ``async with``.

    Raises:
        ConfigurationError: The ``postgres`` extra is not installed, or the URL is invalid.
    """
    try:
        from carrier_plugin_sql.postgres import PostgresStore  # asyncpg loads here only
    except ImportError as exc:
        from carrier.errors import ConfigurationError

        raise ConfigurationError(
            f"The PostgreSQL store needs asyncpg and pgvector ({exc}). "
            f"Install them with: pip install 'carrier-plugin-sql[postgres]'"
        ) from exc
    from carrier_plugin_sql.settings import SqlSettings

    settings = settings if settings is not None else SqlSettings()
    return PostgresStore(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construction=settings.hnsw_ef_construction,
        hnsw_ef_search=settings.hnsw_ef_search,
    )
