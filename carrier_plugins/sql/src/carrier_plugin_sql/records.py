"""Goals, tasks, cache and logs of ``SqlStore`` (a mixin), and the one-statement helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from carrier.errors import StoreError
from carrier.types import Goal, GoalStatus, Task
from carrier_plugin_sql.db import Database, transaction
from carrier_plugin_sql.ops import ADD_CACHE

__all__ = ["RecordsMixin", "encode_cache"]

#: Reads of up to this many rows run inline (on the event loop's thread).
INLINE_ROWS = 256


class RecordsMixin:
    """The ``MemoryStore`` methods of goals, tasks, cache and logs."""

    _db: Database

    # goals
    async def upsert_goal(self, goal: Goal) -> None:
        await self._execute(
            "INSERT INTO goals (id, agent_id, room_id, status, created_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "agent_id = excluded.agent_id, room_id = excluded.room_id, "
            "status = excluded.status, created_at = excluded.created_at, data = excluded.data",
            (
                goal.id,
                goal.agent_id,
                goal.room_id,
                goal.status.value,
                goal.created_at,
                goal.model_dump_json(),
            ),
            op="storing a goal",
        )

    async def get_goal(self, goal_id: str) -> Goal | None:
        rows = await self._fetch(
            "SELECT data FROM goals WHERE id = ?", (goal_id,), op="reading a goal"
        )
        return Goal.model_validate_json(rows[0][0]) if rows else None

    async def get_goals(
        self, *, agent_id: str, room_id: str | None = None, status: GoalStatus | None = None
    ) -> list[Goal]:
        where, values = ["agent_id = ?"], [agent_id]
        if room_id is not None:
            where.append("room_id = ?")
            values.append(room_id)
        if status is not None:
            where.append("status = ?")
            values.append(GoalStatus(status).value)
        rows = await self._fetch(
            f"SELECT data FROM goals WHERE {' AND '.join(where)} ORDER BY created_at, rowid",
            values,
            op="reading goals",
        )
        return [Goal.model_validate_json(row[0]) for row in rows]

    # tasks
    async def upsert_task(self, task: Task) -> None:
        await self._execute(
            "INSERT INTO tasks (id, agent_id, due_at, created_at, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, "
            "due_at = excluded.due_at, created_at = excluded.created_at, data = excluded.data",
            (task.id, task.agent_id, task.due_at, task.created_at, task.model_dump_json()),
            op="storing a task",
        )

    async def get_tasks(self, *, agent_id: str, tags: Sequence[str] = ()) -> list[Task]:
        rows = await self._fetch(
            "SELECT data FROM tasks WHERE agent_id = ? "
            "ORDER BY due_at IS NULL, due_at, created_at, rowid",
            (agent_id,),
            op="reading tasks",
        )
        wanted = set(tags)
        tasks = (Task.model_validate_json(row[0]) for row in rows)
        return [task for task in tasks if wanted <= set(task.tags)]

    async def get_task(self, task_id: str, *, agent_id: str) -> Task | None:
        rows = await self._fetch(
            "SELECT data FROM tasks WHERE id = ? AND agent_id = ?",
            (task_id, agent_id),
            op="reading a task",
        )
        return Task.model_validate_json(rows[0][0]) if rows else None

    async def get_due_tasks(
        self, *, agent_id: str, before: float, limit: int = 10_000
    ) -> list[Task]:
        rows = await self._fetch(
            "SELECT data FROM tasks WHERE agent_id = ? AND due_at IS NOT NULL "
            "AND due_at <= ? ORDER BY due_at, created_at, rowid LIMIT ?",
            (agent_id, before, limit),
            op="reading due tasks",
        )
        return [Task.model_validate_json(row[0]) for row in rows]

    async def delete_task(self, task_id: str) -> bool:
        return (
            await self._execute("DELETE FROM tasks WHERE id = ?", (task_id,), op="deleting a task")
            == 1
        )

    # cache and logs
    async def get_cache(self, key: str) -> Any:
        rows = await self._fetch(
            "SELECT value, expires_at FROM cache WHERE key = ?", (key,), op="reading the cache"
        )
        if not rows:
            return None
        value, expires_at = rows[0]
        if expires_at is not None and expires_at <= time.time():
            await self._execute(
                "DELETE FROM cache WHERE key = ? AND expires_at <= ?",
                (key, time.time()),
                op="expiring a cache entry",
            )
            return None
        return json.loads(value)

    async def set_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        encoded = encode_cache(key, value)
        expires_at = None if ttl_s is None else time.time() + ttl_s
        await self._execute(
            "INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (key, encoded, expires_at),
            op="writing the cache",
        )

    async def delete_cache(self, key: str) -> bool:
        return (
            await self._execute(
                "DELETE FROM cache WHERE key = ?", (key,), op="deleting a cache entry"
            )
            == 1
        )

    # atomic operations (SQLite; PostgresStore overrides them in pg_cache)
    async def add_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        now = time.time()
        expires_at = None if ttl_s is None else now + ttl_s
        changed = await self._execute(
            ADD_CACHE,
            (key, encode_cache(key, value), expires_at, now),
            op="adding a cache entry",
        )
        return changed == 1

    async def compare_and_set_cache(
        self, key: str, expected: Any, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        now = time.time()
        old = encode_cache(key, expected)
        if value is None:
            changed = await self._execute(
                "DELETE FROM cache WHERE key = ? AND value = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key, old, now),
                op="deleting a cache entry",
            )
        else:
            changed = await self._execute(
                "UPDATE cache SET value = ?, expires_at = ? WHERE key = ? AND value = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (encode_cache(key, value), None if ttl_s is None else now + ttl_s, key, old, now),
                op="swapping a cache entry",
            )
        return changed == 1

    async def increment_cache(
        self, key: str, amount: int = 1, *, ttl_s: float | None = None
    ) -> int:
        found: int | str = await self._db.run(
            _increment, key, amount, ttl_s, op="incrementing a cache entry"
        )
        if isinstance(found, str):
            raise StoreError(
                f"Cache key {key!r} holds {found}, not an integer; increment_cache needs "
                f"an integer (or an absent key)."
            )
        return found

    async def list_cache(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        # the range on the primary key reads only the prefix's keys (an index range);
        # the upper bound is the prefix with its last character incremented
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        rows = await self._fetch(
            "SELECT key, value FROM cache WHERE key >= ? AND key < ? AND substr(key, 1, ?) = ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
            (prefix, upper, len(prefix), prefix, time.time(), limit),
            op="listing cache entries",
            inline=False,
        )
        return [(key, json.loads(value)) for key, value in rows]

    async def log(
        self, *, agent_id: str, room_id: str | None, type: str, body: dict[str, Any]
    ) -> None:
        try:
            encoded = json.dumps(body)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"Log body of type {type!r} is not JSON-serializable: {exc}.") from exc
        await self._execute(
            "INSERT INTO logs (agent_id, room_id, type, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (agent_id, room_id, type, encoded, time.time()),
            op="writing a log entry",
        )

    async def get_logs(
        self, *, agent_id: str, room_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        room = "" if room_id is None else " AND room_id = ?"
        values: list[Any] = [agent_id] + ([] if room_id is None else [room_id]) + [limit]
        rows = await self._fetch(
            "SELECT agent_id, room_id, type, body, created_at FROM logs "
            f"WHERE agent_id = ?{room} ORDER BY seq DESC LIMIT ?",
            values,
            op="reading logs",
            inline=limit <= INLINE_ROWS,
        )
        return [
            {"agent_id": a, "room_id": r, "type": t, "body": json.loads(b), "created_at": c}
            for a, r, t, b, c in reversed(rows)
        ]

    # helpers
    async def _execute(self, sql: str, values: Sequence[Any], *, op: str) -> int:
        """Run one write statement (autocommit); the number of rows it changed."""
        return await self._db.run(_execute, sql, values, op=op)

    async def _fetch(
        self, sql: str, values: Sequence[Any], *, op: str, inline: bool = True
    ) -> list[Any]:
        """Run one query; all its rows. ``inline=False`` for a query whose cost
        grows with the data (it runs in the worker thread)."""
        return await self._db.run(_fetchall, sql, values, op=op, inline=inline)


def encode_cache(key: str, value: Any) -> str:
    """A cache value as canonical JSON (sorted keys), so equal values compare equal."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"Cache value for {key!r} is not JSON-serializable: {exc}. "
            f"Store plain dicts, lists, strings and numbers."
        ) from exc


def _increment(conn: Any, key: str, amount: int, ttl_s: float | None) -> int | str:
    """The new value, or the type name of a value that is not an integer."""
    now = time.time()
    with transaction(conn):
        row = conn.execute(
            "SELECT value FROM cache WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (key, now),
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                (key, str(amount), None if ttl_s is None else now + ttl_s),
            )
            return amount
        current = json.loads(row[0])
        if not isinstance(current, int) or isinstance(current, bool):
            return type(current).__name__
        conn.execute("UPDATE cache SET value = ? WHERE key = ?", (str(current + amount), key))
        return int(current + amount)


def _execute(conn: Any, sql: str, values: Sequence[Any]) -> int:
    return int(conn.execute(sql, values).rowcount)


def _fetchall(conn: Any, sql: str, values: Sequence[Any]) -> list[Any]:
    return list(conn.execute(sql, values).fetchall())
