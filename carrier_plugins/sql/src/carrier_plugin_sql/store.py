"""``SqlStore``: Carrier's durable memory store on SQLite.

One connection in WAL mode serves every call; each call is a single transaction,
run inline on the event loop's thread when short and uncontended, else in a
worker thread (see :mod:`carrier_plugin_sql.db`). Goals, tasks, cache and logs
live in :mod:`carrier_plugin_sql.records`.
Semantic search is exact: in RAM with numpy by default, or inside SQLite with
sqlite-vec (``vector_search="sqlite-vec"``), which keeps nothing in RAM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from carrier.errors import ConfigurationError
from carrier.protocols import MemoryStore
from carrier.types import (
    Entity,
    Memory,
    MemoryType,
    Participant,
    ParticipantState,
    Room,
    ScoredMemory,
    SearchScope,
)
from carrier_plugin_sql import opening, ops
from carrier_plugin_sql.db import Database
from carrier_plugin_sql.records import INLINE_ROWS, RecordsMixin, encode_cache
from carrier_plugin_sql.rows import (
    DEFAULT_CACHE_BYTES,
    FROM,
    MEMORY_COLUMNS,
    MemoryCache,
    complete,
    memories_from_rows,
)
from carrier_plugin_sql.url import parse_sqlite_url
from carrier_plugin_sql.vectors import VectorIndex

__all__ = ["SqlStore", "VectorSearch"]

VectorSearch = Literal["auto", "numpy", "sqlite-vec"]
_VECTOR_SEARCH = ("auto", "numpy", "sqlite-vec")


#: Indexes of up to this many vectors are searched on the event loop's thread.
INLINE_VECTORS = 20_000


class SqlStore(RecordsMixin, MemoryStore):
    """A ``MemoryStore`` on a SQLite file (or in memory).

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
            ``sqlite://:memory:``; options may follow ``?`` (``vector_search``,
            ``busy_timeout_s``, ``write_retry_s``) and win over the keywords.
        vector_search: ``"numpy"`` (exact, in RAM, fastest), ``"sqlite-vec"``
            (exact, inside SQLite, no RAM) or ``"auto"`` (numpy).
        busy_timeout_s: How long SQLite waits for another process's write lock.
        write_retry_s: How long a call retries while the file stays locked.
        memory_cache_mb: The budget of validated memories kept in RAM (MiB, estimated).
        page_cache_mb: SQLite's page cache of each connection (MiB).

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
        memory_cache_mb: float = DEFAULT_CACHE_BYTES / 2**20,
        page_cache_mb: float = 32.0,
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
            page_cache_kib=int(page_cache_mb * 1024),
        )
        self._dimension: int | None = None
        self._index: dict[str, VectorIndex] = {}
        self._memories = MemoryCache(int(memory_cache_mb * 2**20))

    def __repr__(self) -> str:
        return f"<SqlStore {self.url!r} vector_search={self.vector_search!r}>"

    def memory_cache_stats(self) -> dict[str, int]:
        """The memory cache now: ``memories`` kept, their estimated ``bytes``, the
        ``max_bytes`` budget, and ``fetched`` (rows read back from the table because they
        were not cached, since the store opened)."""
        cache = self._memories
        return {
            "memories": len(cache),
            "bytes": cache.bytes,
            "max_bytes": cache.max_bytes,
            "fetched": cache.fetched,
        }

    # lifecycle
    async def open(self) -> None:
        """Connect, switch to WAL, and create or migrate the schema."""
        await self._db.open()
        try:
            self._dimension = await self._db.run(
                opening.open_schema,
                self._db.where,
                inline=False,
                op="creating or migrating the schema",
            )
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        """Close the connection and drop the in-RAM vector index."""
        await self._db.close()
        self._index.clear()
        self._memories.clear()

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
        rows = await self._rows_with_ids(
            "SELECT data FROM entities WHERE id IN", entity_ids, op="reading entities"
        )
        return [Entity.model_validate_json(row[0]) for row in rows]

    async def _rows_with_ids(
        self, select: str, ids: Sequence[str], *, op: str
    ) -> list[Sequence[Any]]:
        """The rows of ``select`` (ending ``... IN``) for ``ids`` (duplicates read once),
        500 ids a statement: SQLite's limit on a statement's parameters is 999 or more."""
        unique = list(dict.fromkeys(ids))
        rows: list[Sequence[Any]] = []
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows += await self._fetch(
                f"{select} ({', '.join('?' * len(chunk))})",
                chunk,
                op=op,
                inline=len(chunk) <= INLINE_ROWS,
            )
        return rows

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

    async def create_room(self, room: Room) -> bool:
        # One statement: of concurrent calls (connections, processes) one inserts.
        return (
            await self._execute(
                "INSERT INTO rooms (id, agent_id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (room.id, room.agent_id, room.model_dump_json()),
                op="creating a room",
            )
            == 1
        )

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

    async def get_room_with_actors(
        self, room_id: str
    ) -> tuple[Room | None, list[Participant], list[Entity]]:
        rows = await self._fetch(ROOM_WITH_ACTORS + "ORDER BY p.rowid", (room_id,), op=_ROOM_OP)
        return room_with_actors(rows)

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
            ops.create_memory,
            self._memories,
            ops.memory_params(memory),
            memory.embedding,
            op="storing a memory",
        )
        if dimension is not None:
            self._dimension = dimension
        return created

    async def create_memory_with_cache(
        self,
        memory: Memory,
        entries: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        release: Mapping[str, Any] | None = None,
    ) -> bool:
        expires_at = None if ttl_s is None else time.time() + ttl_s
        rows = [(key, encode_cache(key, value), expires_at) for key, value in entries.items()]
        released = [(key, encode_cache(key, value)) for key, value in (release or {}).items()]
        created, dimension = await self._db.run(
            ops.create_memory,
            self._memories,
            ops.memory_params(memory),
            memory.embedding,
            rows,
            released,
            op="storing a memory",
        )
        if dimension is not None:
            self._dimension = dimension
        return created

    async def get_memory(self, memory_id: str) -> Memory | None:
        rows = await self._fetch(
            f"SELECT {MEMORY_COLUMNS} {FROM} WHERE m.id = ?",
            (memory_id,),
            op="reading a memory",
        )
        return memories_from_rows([complete(rows[0])])[0] if rows else None

    async def get_memories_by_id(self, memory_ids: Sequence[str]) -> list[Memory]:
        rows = await self._rows_with_ids(
            f"SELECT {MEMORY_COLUMNS} {FROM} WHERE m.id IN", memory_ids, op="reading memories"
        )
        found = {m.id: m for m in memories_from_rows([complete(row) for row in rows])}
        return [found[i] for i in dict.fromkeys(memory_ids) if i in found]

    async def get_memories(
        self,
        *,
        agent_id: str,
        room_id: str | None = None,
        entity_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 50,
        before: float | None = None,
        scope: SearchScope | None = None,
    ) -> list[Memory]:
        if limit <= 0:
            return []
        return await self._db.run(
            ops.select_memories,
            self._memories,
            agent_id,
            room_id,
            entity_id,
            None if type is None else MemoryType(type).value,
            limit,
            before,
            scope,
            op="reading memories",
            inline=limit <= INLINE_ROWS,
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
            inline=False,
        )
        return int(rows[0][0])

    async def delete_memory(self, memory_id: str) -> bool:
        return (
            await self._db.run(self._delete_memory, memory_id, op="deleting a memory") is not None
        )

    def _delete_memory(self, conn: Any, memory_id: str) -> int | None:
        seq = ops.delete_memory(conn, memory_id)
        index = self._index.get("index")
        if seq is not None:
            self._memories.discard(seq)
            if index is not None:
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
        entity_id: str | None = None,
        scope: SearchScope | None = None,
    ) -> list[ScoredMemory]:
        filters = {
            "agent_id": agent_id,
            "room_id": room_id,
            "type": None if type is None else MemoryType(type).value,
            "limit": limit,
            "threshold": threshold,
            "entity_id": entity_id,
            "scope": scope,
        }
        query = list(embedding)
        if self.vector_search == "sqlite-vec":
            dimension, found = await self._db.run(
                ops.search_sqlite_vec,
                self._memories,
                query,
                filters,
                op="searching memories",
                inline=False,
            )
        else:
            index = self._index.get("index")
            dimension, found = await self._db.run(
                ops.search_numpy,
                self._index,
                self._memories,
                query,
                filters,
                op="searching memories",
                # a small index is searched in well under a millisecond: a trip to the
                # worker thread would cost more than the search
                inline=index is not None and len(index) <= INLINE_VECTORS,
            )
        if dimension is not None:
            self._dimension = dimension
        return found

    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            f"SELECT {MEMORY_COLUMNS} FROM pending_messages AS p "
            "JOIN memories AS m ON m.seq = p.memory_seq "
            "LEFT JOIN embeddings AS e ON e.memory_seq = m.seq "
            "WHERE p.agent_id = ? ORDER BY p.created_at, p.memory_seq LIMIT ?",
            (agent_id, limit),
            op="reading unanswered messages",
            inline=limit <= INLINE_ROWS,
        )
        return memories_from_rows([complete(row) for row in rows])


def _participant(row: Sequence[Any]) -> Participant:
    room_id, entity_id, state, role = row
    return Participant(room_id=room_id, entity_id=entity_id, state=state, role=role)


#: A room, each of its participants and their entities, one row a participant (one row
#: of NULLs after the room's data for a room without any); the store adds its order.
ROOM_WITH_ACTORS = (
    "SELECT r.data, p.room_id, p.entity_id, p.state, p.role, e.data FROM rooms AS r "
    "LEFT JOIN participants AS p ON p.room_id = r.id "
    "LEFT JOIN entities AS e ON e.id = p.entity_id WHERE r.id = ? "
)
_ROOM_OP = "reading a room with its participants"


def room_with_actors(
    rows: Sequence[Sequence[Any]],
) -> tuple[Room | None, list[Participant], list[Entity]]:
    """What :data:`ROOM_WITH_ACTORS` read, as ``MemoryStore.get_room_with_actors``
    returns it."""
    if not rows:
        return None, [], []
    members = [row for row in rows if row[2] is not None]
    return (
        Room.model_validate_json(rows[0][0]),
        [_participant(row[1:5]) for row in members],
        [Entity.model_validate_json(row[5]) for row in members if row[5] is not None],
    )
