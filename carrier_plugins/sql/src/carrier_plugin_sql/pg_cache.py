"""The cache's atomic operations on PostgreSQL (``PostgresStore`` mixes them in before
:class:`~carrier_plugin_sql.records.RecordsMixin`, whose versions are SQLite's).

Values are compared as canonical JSON text (``encode_cache``); the ``json`` column keeps
the text as written, so ``value::text`` is exactly what was stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from carrier.errors import StoreError
from carrier_plugin_sql.records import encode_cache

if TYPE_CHECKING:
    from carrier_plugin_sql.postgres import _Acquire

__all__ = ["PgCacheMixin"]


def _changed(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class PgCacheMixin:
    """``add_cache``, ``compare_and_set_cache``, ``increment_cache`` and ``list_cache``."""

    #: ``async with self._connection(op) as conn``: a pooled connection (PostgresStore's).
    _connection: Callable[[str], _Acquire]

    async def add_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        now = time.time()
        async with self._connection("adding a cache entry") as conn:
            status = await conn.execute(
                "INSERT INTO cache (key, value, expires_at) VALUES ($1, $2::json, $3) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at "
                "WHERE cache.expires_at IS NOT NULL AND cache.expires_at <= $4",
                key,
                encode_cache(key, value),
                None if ttl_s is None else now + ttl_s,
                now,
            )
        return _changed(status) == 1

    async def compare_and_set_cache(
        self, key: str, expected: Any, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        now = time.time()
        old = encode_cache(key, expected)
        async with self._connection("swapping a cache entry") as conn:
            if value is None:
                status = await conn.execute(
                    "DELETE FROM cache WHERE key = $1 AND value::text = $2 "
                    "AND (expires_at IS NULL OR expires_at > $3)",
                    key,
                    old,
                    now,
                )
            else:
                status = await conn.execute(
                    "UPDATE cache SET value = $1::json, expires_at = $2 WHERE key = $3 "
                    "AND value::text = $4 AND (expires_at IS NULL OR expires_at > $5)",
                    encode_cache(key, value),
                    None if ttl_s is None else now + ttl_s,
                    key,
                    old,
                    now,
                )
        return _changed(status) == 1

    async def increment_cache(
        self, key: str, amount: int = 1, *, ttl_s: float | None = None
    ) -> int:
        now = time.time()
        async with self._connection("incrementing a cache entry") as conn, conn.transaction():
            # an absent or expired key starts over at 0; the row is then locked for us
            await conn.execute(
                "INSERT INTO cache (key, value, expires_at) VALUES ($1, '0'::json, $2) "
                "ON CONFLICT (key) DO UPDATE SET value = '0'::json, "
                "expires_at = excluded.expires_at "
                "WHERE cache.expires_at IS NOT NULL AND cache.expires_at <= $3",
                key,
                None if ttl_s is None else now + ttl_s,
                now,
            )
            row = await conn.fetchrow(
                "SELECT value::text FROM cache WHERE key = $1 FOR UPDATE", key
            )
            current = json.loads(row[0])
            if not isinstance(current, int) or isinstance(current, bool):
                raise StoreError(
                    f"Cache key {key!r} holds {type(current).__name__}, not an integer; "
                    f"increment_cache needs an integer (or an absent key)."
                )
            await conn.execute(
                "UPDATE cache SET value = $1::json WHERE key = $2", str(current + amount), key
            )
        return int(current + amount)

    async def list_cache(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        async with self._connection("listing cache entries") as conn:
            rows = await conn.fetch(
                "SELECT key, value::text FROM cache WHERE starts_with(key, $1) "
                'AND (expires_at IS NULL OR expires_at > $2) ORDER BY key COLLATE "C" '
                "LIMIT $3",
                prefix,
                time.time(),
                limit,
            )
        return [(row[0], json.loads(row[1])) for row in rows]
