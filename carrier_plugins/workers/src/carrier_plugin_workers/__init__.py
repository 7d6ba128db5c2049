"""Carrier plugin: durable execution across many worker processes on PostgreSQL.

Importing this package is cheap; procrastinate and psycopg load when the
``workers`` executor first enqueues or ``carrier worker`` starts.
"""

from __future__ import annotations

__all__: list[str] = []
