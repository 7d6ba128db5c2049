"""Carrier plugin: a durable SQLite memory store with vector search.

Importing this package is cheap; the store and its drivers load on first use of
:class:`SqlStore` (``from carrier_plugin_sql.store import SqlStore``).
"""

from __future__ import annotations

__all__: list[str] = []
