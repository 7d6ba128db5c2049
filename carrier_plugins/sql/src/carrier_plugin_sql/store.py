"""``SqlStore``: Carrier's durable memory store on SQLite.

One aiosqlite connection in WAL mode serves every call; each call is a single
transaction run in the connection's thread (see :mod:`carrier_plugin_sql.db`).
Semantic search is exact: in RAM with numpy by default, or inside SQLite with
sqlite-vec (``vector_search="sqlite-vec"``), which keeps nothing in RAM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from carrier.errors import ConfigurationError, StoreError
from carrier.protocols import MemoryStore
from carrier.types import (
    Entity,
    Goal,
    GoalStatus,
    Memory,
    MemoryType,
    Participant,
    ParticipantState,
    Room,
    ScoredMemory,
    Task,
)
from carrier_plugin_sql import ops, schema
from carrier_plugin_sql.db import Database, transaction
from carrier_plugin_sql.url import parse_sqlite_url
from carrier_plugin_sql.vectors import VectorIndex

__all__ = ["SqlStore", "VectorSearch"]

VectorSearch = Literal["auto", "numpy", "sqlite-vec"]
_VECTOR_SEARCH = ("auto", "numpy", "sqlite-vec")


def _open_schema(conn: Any, where: str) -> int | None:
    """Create or migrate the schema; the recorded embedding dimension."""

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
    if found != schema.SCHEMA_VERSION:
        with transaction(conn):
            found = version() or 0  # another process may have migrated meanwhile
            schema.migrate(conn.execute, found, where=where)
            conn.execute(
                "INSERT INTO carrier_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(schema.SCHEMA_VERSION),),
            )
    return ops.read_dimension(conn)


class SqlStore(MemoryStore):
    """A ``MemoryStore`` on a SQLite file (or in memory).

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
            ``sqlite://:memory:``; options may follow ``?`` (``vector_search``,
            ``busy_timeout_s``, ``write_retry_s``) and win over the keywords.
        vector_search: ``"numpy"`` (exact, in RAM, fastest), ``"sqlite-vec"``
            (exact, inside SQLite, no RAM) or ``"auto"`` (numpy).
        busy_timeout_s: How long SQLite waits for another process's write lock.
        write_retry_s: How long a call retries while the file stays locked.

    Raises:
        ConfigurationError: The URL or an option is invalid.
    """

    def __init__(
        self,
        url: str = "sqlite://:memory:",
        *,
        vector_search: VectorSearch = "auto",
        busy_timeout_s: float = 5.0,
        write_retry_s: float = 30.0,
    ) -> None:
        target = parse_sqlite_url(url)
        options: dict[str, Any] = {
            "vector_search": vector_search,
            "busy_timeout_s": busy_timeout_s,
            "write_retry_s": write_retry_s,
        }
        options.update(target.options)
        if options["vector_search"] not in _VECTOR_SEARCH:
            raise ConfigurationError(
                f"vector_search must be one of {', '.join(map(repr, _VECTOR_SEARCH))}; "
                f"got {options['vector_search']!r}."
            )
        for name in ("busy_timeout_s", "write_retry_s"):
            try:
                options[name] = float(options[name])
            except ValueError:
                raise ConfigurationError(
                    f"{name} must be a number of seconds; got {options[name]!r} in {url!r}."
                ) from None
        self.url = url
        self.vector_search: str = (
            "numpy" if options["vector_search"] == "auto" else options["vector_search"]
        )
        self._db = Database(
            target.path,
            busy_timeout_s=options["busy_timeout_s"],
            write_retry_s=options["write_retry_s"],
            load_vec=self.vector_search == "sqlite-vec",
        )
        self._dimension: int | None = None
        self._index: dict[str, VectorIndex] = {}

    def __repr__(self) -> str:
        return f"<SqlStore {self.url!r} vector_search={self.vector_search!r}>"

    # lifecycle
    async def open(self) -> None:
        """Connect, switch to WAL, and create or migrate the schema."""
        await self._db.open()
        try:
            self._dimension = await self._db.run(
                _open_schema, self._db.where, op="creating or migrating the schema"
            )
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        """Close the connection and drop the in-RAM vector index."""
        await self._db.close()
        self._index.clear()

    @property
    def embedding_dimension(self) -> int | None:
        return self._dimension

    # agents and entities
    async def upsert_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        await self._execute(
            "INSERT INTO agents (id, name, data) VALUES (?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET name = excluded.name, data = excluded.data",
            (agent_id, name, json.dumps(data)),
            op="storing an agent",
        )

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT id, name, data FROM agents WHERE id = ?", (agent_id,), op="reading an agent"
        )
        if not rows:
            return None
        id_, name, data = rows[0]
        return {"id": id_, "name": name, "data": json.loads(data)}

    async def upsert_entity(self, entity: Entity) -> None:
        await self._execute(
            "INSERT INTO entities (id, agent_id, data) VALUES (?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET agent_id = excluded.agent_id, data = excluded.data",
            (entity.id, entity.agent_id, entity.model_dump_json()),
            op="storing an entity",
        )

    async def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        ids = list(dict.fromkeys(entity_ids))
        found: list[Entity] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._fetch(
                f"SELECT data FROM entities WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
                op="reading entities",
            )
            found.extend(Entity.model_validate_json(row[0]) for row in rows)
        return found

    # rooms and participants
    async def upsert_room(self, room: Room) -> None:
        await self._execute(
            "INSERT INTO rooms (id, agent_id, data) VALUES (?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET agent_id = excluded.agent_id, data = excluded.data",
            (room.id, room.agent_id, room.model_dump_json()),
            op="storing a room",
        )

    async def get_room(self, room_id: str) -> Room | None:
        rows = await self._fetch(
            "SELECT data FROM rooms WHERE id = ?", (room_id,), op="reading a room"
        )
        return Room.model_validate_json(rows[0][0]) if rows else None

    async def upsert_participant(self, participant: Participant) -> None:
        await self._execute(
            "INSERT INTO participants (room_id, entity_id, state, role) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (room_id, entity_id) DO UPDATE SET state = excluded.state, "
            "role = excluded.role",
            (
                participant.room_id,
                participant.entity_id,
                participant.state.value,
                participant.role.value,
            ),
            op="storing a participant",
        )

    async def get_participants(self, room_id: str) -> list[Participant]:
        rows = await self._fetch(
            "SELECT room_id, entity_id, state, role FROM participants WHERE room_id = ? "
            "ORDER BY rowid",
            (room_id,),
            op="reading participants",
        )
        return [_participant(row) for row in rows]

    async def get_participant(self, room_id: str, entity_id: str) -> Participant | None:
        rows = await self._fetch(
            "SELECT room_id, entity_id, state, role FROM participants "
            "WHERE room_id = ? AND entity_id = ?",
            (room_id, entity_id),
            op="reading a participant",
        )
        return _participant(rows[0]) if rows else None

    async def set_participant_state(
        self, room_id: str, entity_id: str, state: ParticipantState
    ) -> None:
        await self._execute(
            "INSERT INTO participants (room_id, entity_id, state, role) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (room_id, entity_id) DO UPDATE SET state = excluded.state",
            (room_id, entity_id, ParticipantState(state).value, "member"),
            op="setting a participant's state",
        )

    async def get_rooms_for_entity(self, entity_id: str) -> list[str]:
        rows = await self._fetch(
            "SELECT room_id FROM participants WHERE entity_id = ? ORDER BY room_id",
            (entity_id,),
            op="reading an entity's rooms",
        )
        return [row[0] for row in rows]

    # memories
    async def create_memory(self, memory: Memory) -> bool:
        created, dimension = await self._db.run(
            ops.create_memory, ops.memory_params(memory), memory.embedding, op="storing a memory"
        )
        if dimension is not None:
            self._dimension = dimension
        return created

    async def get_memory(self, memory_id: str) -> Memory | None:
        rows = await self._fetch(
            f"SELECT {ops.MEMORY_COLUMNS} FROM memories AS m LEFT JOIN embeddings AS e "
            "ON e.memory_seq = m.seq WHERE m.id = ?",
            (memory_id,),
            op="reading a memory",
        )
        return ops.memory_from_row(rows[0]) if rows else None

    async def get_memories(
        self,
        *,
        agent_id: str,
        room_id: str | None = None,
        entity_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[Memory]:
        if limit <= 0:
            return []
        return await self._db.run(
            ops.select_memories,
            agent_id,
            room_id,
            entity_id,
            None if type is None else MemoryType(type).value,
            limit,
            before,
            op="reading memories",
        )

    async def count_memories(
        self, *, agent_id: str, room_id: str | None = None, type: MemoryType | None = None
    ) -> int:
        where, values = ["agent_id = ?"], [agent_id]
        if room_id is not None:
            where.append("room_id = ?")
            values.append(room_id)
        if type is not None:
            where.append("type = ?")
            values.append(MemoryType(type).value)
        rows = await self._fetch(
            f"SELECT count(*) FROM memories WHERE {' AND '.join(where)}",
            values,
            op="counting memories",
        )
        return int(rows[0][0])

    async def delete_memory(self, memory_id: str) -> bool:
        return (
            await self._db.run(self._delete_memory, memory_id, op="deleting a memory") is not None
        )

    def _delete_memory(self, conn: Any, memory_id: str) -> int | None:
        seq = ops.delete_memory(conn, memory_id)
        index = self._index.get("index")
        if seq is not None and index is not None:
            index.remove(seq)
        return seq

    async def search_memories(
        self,
        *,
        agent_id: str,
        embedding: Sequence[float],
        room_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 10,
        threshold: float = 0.0,
    ) -> list[ScoredMemory]:
        filters = {
            "agent_id": agent_id,
            "room_id": room_id,
            "type": None if type is None else MemoryType(type).value,
            "limit": limit,
            "threshold": threshold,
        }
        query = list(embedding)
        if self.vector_search == "sqlite-vec":
            dimension, found = await self._db.run(
                ops.search_sqlite_vec, query, filters, op="searching memories"
            )
        else:
            dimension, found = await self._db.run(
                ops.search_numpy, self._index, query, filters, op="searching memories"
            )
        if dimension is not None:
            self._dimension = dimension
        return found

    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            f"SELECT {ops.MEMORY_COLUMNS} FROM pending_messages AS p "
            "JOIN memories AS m ON m.seq = p.memory_seq "
            "LEFT JOIN embeddings AS e ON e.memory_seq = m.seq "
            "WHERE p.agent_id = ? ORDER BY p.created_at, p.memory_seq LIMIT ?",
            (agent_id, limit),
            op="reading unanswered messages",
        )
        return [ops.memory_from_row(row) for row in rows]

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
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"Cache value for {key!r} is not JSON-serializable: {exc}. "
                f"Store plain dicts, lists, strings and numbers."
            ) from exc
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
        )
        return [
            {"agent_id": a, "room_id": r, "type": t, "body": json.loads(b), "created_at": c}
            for a, r, t, b, c in reversed(rows)
        ]

    # helpers
    async def _execute(self, sql: str, values: Sequence[Any], *, op: str) -> int:
        """Run one write statement (autocommit); the number of rows it changed."""
        return await self._db.run(_execute, sql, values, op=op)

    async def _fetch(self, sql: str, values: Sequence[Any], *, op: str) -> list[Any]:
        """Run one query; all its rows."""
        return await self._db.run(_fetchall, sql, values, op=op)


def _execute(conn: Any, sql: str, values: Sequence[Any]) -> int:
    return int(conn.execute(sql, values).rowcount)


def _fetchall(conn: Any, sql: str, values: Sequence[Any]) -> list[Any]:
    return list(conn.execute(sql, values).fetchall())


def _participant(row: Sequence[Any]) -> Participant:
    room_id, entity_id, state, role = row
    return Participant(room_id=room_id, entity_id=entity_id, state=state, role=role)
