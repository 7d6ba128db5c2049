"""``PostgresStore``: Carrier's memory store on PostgreSQL with pgvector.

An asyncpg connection pool serves every call; each call is one statement or one
transaction. The tables are those of :mod:`.schema` (see :mod:`.pg_schema`);
embeddings live in a pgvector ``vector`` column with an HNSW cosine index, and
semantic search is ``ORDER BY vector <=> query`` within the agent (and room and
type). The queue of unanswered messages is kept in the same statement as the
memory written, or the same transaction as the memory deleted. Goals, tasks, cache
and logs come from :class:`~carrier_plugin_sql.records.RecordsMixin`, whose ``?``
placeholders are rewritten to ``$n``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import asyncpg
from pgvector import Vector

from carrier.errors import CarrierError, ConfigurationError, EmbeddingDimensionError, StoreError
from carrier.protocols import MemoryStore
from carrier.stores import TurnQuery, TurnReads, with_new_memory
from carrier.types import (
    Entity,
    Goal,
    GoalStatus,
    Memory,
    MemoryType,
    Participant,
    Room,
    ScoredMemory,
    SearchScope,
)
from carrier_plugin_sql import pg_schema, pg_search
from carrier_plugin_sql.ops import memory_params
from carrier_plugin_sql.pg_cache import PgCacheMixin
from carrier_plugin_sql.pg_url import PostgresTarget, parse_postgres_url
from carrier_plugin_sql.records import RecordsMixin, encode_cache
from carrier_plugin_sql.scopes import Filters, Part
from carrier_plugin_sql.store import ROOM_WITH_ACTORS, SqlStore, room_with_actors

__all__ = ["PostgresStore"]

#: A memory's columns but its embedding, from ``memories AS m``.
_ROW = (
    "m.seq, m.id, m.agent_id, m.entity_id, m.room_id, m.world_id, m.type, m.content, "
    "m.created_at, m.is_unique, m.meta, m.scope"
)
#: A memory's columns, as :func:`_memory` reads them.
_COLUMNS = f"{_ROW}, e.vector"
_MEMORY = f"SELECT {_COLUMNS} FROM memories AS m LEFT JOIN embeddings AS e ON e.memory_seq = m.seq"
#: The recorded embedding dimension ($1: its key), first column of a search's first read.
_DIMENSION = "(SELECT value FROM carrier_meta WHERE key = $1)"
# One statement, so one round trip and atomic on its own: the memory, its embedding
# and the queue of unanswered messages. A message is pending until a memory with id
# "{message id}-{agent id}" exists; storing that answer ($15: the message's id) takes
# the message off the queue.
_CREATE_MEMORY = """
WITH new AS (
    INSERT INTO memories (id, agent_id, entity_id, room_id, world_id, type, content,
        created_at, is_unique, internal, meta, scope)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (id) DO NOTHING
    RETURNING seq, id, agent_id, entity_id, room_id, type, created_at, internal, scope
), vector AS (
    INSERT INTO embeddings (memory_seq, memory_id, agent_id, room_id, type, dimension, vector,
        entity_id, scope)
    SELECT seq, id, agent_id, room_id, type, $13::integer, $14::vector, entity_id, scope FROM new
    WHERE $14::vector IS NOT NULL
), pending AS (
    INSERT INTO pending_messages (memory_id, agent_id, created_at, memory_seq)
    SELECT n.id, n.agent_id, n.created_at, n.seq FROM new AS n
    WHERE n.type = 'message' AND n.entity_id <> n.agent_id AND NOT n.internal
        AND NOT EXISTS (SELECT 1 FROM memories WHERE id = n.id || '-' || n.agent_id)
    ON CONFLICT (memory_id) DO NOTHING
), answered AS (
    DELETE FROM pending_messages WHERE memory_id = $15::text AND EXISTS (SELECT 1 FROM new)
)
SELECT seq FROM new
"""
# The same, then cache entries ($16 keys, $17 JSON texts, $18 expiry, $19 now) added as
# add_cache does (where the key is absent or expired); the memory's seq only if it was
# created and every entry added.
_CREATE_MEMORY_WITH_CACHE = _CREATE_MEMORY.replace(
    "\nSELECT seq FROM new\n",
    """, cached AS (
    INSERT INTO cache (key, value, expires_at)
    SELECT e.key, e.value::json, $18::float8 FROM unnest($16::text[], $17::text[]) AS e(key, value)
    WHERE EXISTS (SELECT 1 FROM new)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
    WHERE cache.expires_at IS NOT NULL AND cache.expires_at <= $19::float8
    RETURNING 1
)
SELECT seq FROM new WHERE (SELECT count(*) FROM cached) = cardinality($16::text[])
""",
)
# The same, then the entries ($20 keys, $21 JSON texts) deleted where they hold that
# value, as compare_and_set_cache(key, value, None) does: a run's lease, with its reply.
_CREATE_MEMORY_RELEASING = _CREATE_MEMORY_WITH_CACHE.replace(
    "\nSELECT seq FROM new WHERE",
    """, released AS (
    DELETE FROM cache AS c USING unnest($20::text[], $21::text[]) AS r(key, value)
    WHERE c.key = r.key AND c.value::text = r.value
        AND (c.expires_at IS NULL OR c.expires_at > $19::float8) AND EXISTS (SELECT 1 FROM new)
)
SELECT seq FROM new WHERE""",
)
# What answering a message reads (MemoryStore.read_turn), in one statement: the room's
# last messages ($1 agent, $2 room, $3 type, $4 limit; one row of NULLs for none), each
# row also carrying the agent's participant record, its goals in progress ($5 status)
# in the room or of no room, and the cache entries of $6 keys that have not expired
# ($7 now).
_READ_TURN = f"""
SELECT h.*,
    (SELECT json_build_array(p.state, p.role) FROM participants AS p
        WHERE p.room_id = $2 AND p.entity_id = $1) AS participant,
    (SELECT coalesce(json_agg(g.data ORDER BY g.created_at, g.id), '[]') FROM goals AS g
        WHERE g.agent_id = $1 AND g.status = $5 AND (g.room_id IS NULL OR g.room_id = $2))
        AS goals,
    (SELECT coalesce(json_object_agg(c.key, c.value), '{{}}') FROM cache AS c
        WHERE c.key = ANY($6::text[]) AND (c.expires_at IS NULL OR c.expires_at > $7))
        AS cached
FROM (SELECT 1) AS one LEFT JOIN LATERAL (
    {_MEMORY} WHERE m.agent_id = $1 AND m.room_id = $2 AND m.type = $3
    ORDER BY m.created_at DESC, m.seq DESC LIMIT $4
) AS h ON true
ORDER BY h.created_at DESC, h.seq DESC
"""
# A memory with its cache entries (_CREATE_MEMORY_WITH_CACHE, $1-$19), then the turn's
# reads (_READ_TURN, its parameters from $20): one statement. The reads see the database
# as it was before the write (a statement's own changes are not visible to it), so the
# caller adds the memory and the entries; each row's "created" is the memory's seq if it
# was created and every entry added.
_CREATE_MEMORY_READING_TURN = _CREATE_MEMORY_WITH_CACHE.replace(
    "\nSELECT seq FROM new WHERE (SELECT count(*) FROM cached) = cardinality($16::text[])\n",
    ", turn AS ("
    + re.sub(r"\$(\d+)", lambda found: f"${int(found.group(1)) + 19}", _READ_TURN)
    + """)
SELECT t.*, (SELECT seq FROM new WHERE (SELECT count(*) FROM cached) = cardinality($16::text[]))
    AS created
FROM turn AS t ORDER BY t.created_at DESC, t.seq DESC
""",
)
# A room ($1 id, $2 agent, $3 data) unless one has its id, and only then its
# participants ($4 entities, $5 states, $6 roles): one statement, so of concurrent
# calls one creates the room and writes its members.
_CREATE_ROOM_WITH = """
WITH room AS (
    INSERT INTO rooms (id, agent_id, data) VALUES ($1, $2, $3)
    ON CONFLICT (id) DO NOTHING RETURNING id
), joined AS (
    INSERT INTO participants (room_id, entity_id, state, role)
    SELECT r.id, p.entity_id, p.state, p.role
    FROM room AS r, unnest($4::text[], $5::text[], $6::text[]) AS p(entity_id, state, role)
    ON CONFLICT (room_id, entity_id) DO UPDATE SET state = excluded.state, role = excluded.role
)
SELECT count(*) > 0 FROM room
"""
# Puts a message back on the queue (its answer was deleted).
_ADD_PENDING = (
    "INSERT INTO pending_messages (memory_id, agent_id, created_at, memory_seq) "
    "SELECT m.id, m.agent_id, m.created_at, m.seq FROM memories AS m WHERE m.id = $1 "
    "AND m.type = 'message' AND m.entity_id <> m.agent_id AND NOT m.internal "
    "AND NOT EXISTS (SELECT 1 FROM memories WHERE id = m.id || '-' || m.agent_id) "
    "ON CONFLICT (memory_id) DO NOTHING"
)
_PLACEHOLDER = re.compile(r"\?")


@cache
def _numbered(sql: str) -> str:
    """SQLite's ``?`` placeholders as PostgreSQL's ``$1, $2, ...``; ``rowid`` as ``id``."""
    count = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(count)}", sql).replace("rowid", "id")


async def _keep_session(conn: Any) -> None:
    """The pool's reset: none. asyncpg's default (``RESET ALL``, ``UNLISTEN *``, ...)
    costs a round trip per store call; the store changes no session state (its
    ``SET LOCAL`` and advisory locks end with their transaction, and asyncpg itself
    rolls back a transaction left open)."""


async def register_vector_codec(conn: Any) -> None:
    """A new pool connection's ``init``: the binary codec of pgvector's ``vector``, the
    one pgvector type the store uses. ``pgvector.asyncpg.register_vector`` also looks
    up ``halfvec`` and ``sparsevec``: three catalogue round trips per new connection
    instead of one."""
    await conn.set_type_codec(
        "vector",
        schema="public",
        encoder=lambda v: (v if isinstance(v, Vector) else Vector(v)).to_binary(),
        decoder=Vector.from_binary,
        format="binary",
    )


def _question_of(memory_id: str, agent_id: str) -> str | None:
    """The id of the message that ``memory_id`` answers, if it is an answer's id."""
    suffix = f"-{agent_id}"
    if len(memory_id) > len(suffix) and memory_id.endswith(suffix):
        return memory_id[: -len(suffix)]
    return None


def _entry_params(entries: Mapping[str, Any], ttl_s: float | None, now: float) -> tuple[Any, ...]:
    """The cache entries' parameters of :data:`_CREATE_MEMORY_WITH_CACHE` ($16-$19)."""
    return (
        list(entries),
        [encode_cache(key, value) for key, value in entries.items()],
        None if ttl_s is None else now + ttl_s,
        now,
    )


def _turn_params(turn: TurnQuery, now: float) -> tuple[Any, ...]:
    """The parameters of :data:`_READ_TURN`."""
    return (
        turn.agent_id,
        turn.room_id,
        MemoryType.MESSAGE.value,
        max(turn.history_limit, 0),
        GoalStatus.IN_PROGRESS.value,
        list(dict.fromkeys(turn.cache_keys)),
        now,
    )


def _turn_reads(rows: Sequence[Any], turn: TurnQuery) -> TurnReads:
    """The reads of :data:`_READ_TURN`'s rows."""
    first = rows[0]
    found = json.loads(first["participant"]) if first["participant"] else None
    participant = (
        None
        if found is None
        else Participant(
            room_id=turn.room_id, entity_id=turn.agent_id, state=found[0], role=found[1]
        )
    )
    return TurnReads(
        participant=participant,
        goals=[Goal.model_validate(goal) for goal in json.loads(first["goals"])],
        history=[_memory(row) for row in reversed(rows) if row["id"] is not None],
        cache=json.loads(first["cached"]),
    )


def _memory(row: Sequence[Any]) -> Memory:
    """A memory from the :data:`_COLUMNS` of a row."""
    _, id_, agent, entity, room, world, type_, content, created_at, unique, meta, scope, vector = (
        row[:13]
    )
    return Memory.model_validate(
        {
            "id": id_,
            "agent_id": agent,
            "entity_id": entity,
            "room_id": room,
            "world_id": world,
            "type": type_,
            "content": json.loads(content),
            "created_at": created_at,
            "unique": unique,
            "scope": scope,
            "metadata": json.loads(meta),
            "embedding": None if vector is None else vector.to_list(),
        }
    )


def _search_sql(
    query: list[float],
    filters: Filters,
    parts: list[Part],
    listed: Sequence[Any],
    max_distance: float,
    limit: int,
) -> tuple[str, list[Any]]:
    """The search statement: unscoped, exact over small sets, or HNSW (see
    :mod:`.pg_search`); ``listed`` is the listing's row after the dimension. An empty
    statement when nothing can match."""
    if not parts:
        return pg_search.nearest(_ROW, query, [filters.part()], max_distance, limit)
    table_rows, *seqs = listed
    small = [(part, rows) for part, rows in zip(parts, seqs, strict=True) if rows]
    large = [part for part, rows in zip(parts, seqs, strict=True) if rows is None]
    if large and pg_search.hnsw_suffices(table_rows):
        return pg_search.nearest(
            _ROW, query, [*large, *(part for part, _ in small)], max_distance, limit
        )
    if not small and not large:
        return "", []
    return pg_search.search(_ROW, query, small, large, max_distance, limit)


#: How long a set found large is searched through HNSW without being listed again.
LARGE_SET_TTL_S = 60.0

#: What asyncpg raises when a call fails; ``InternalClientError`` comes from a
#: connection the server dropped mid-call (a restart).
_DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class _Pool:
    """The pool behind :class:`RecordsMixin`'s ``_db.run(fn, sql, values, op=...)``."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def run(self, fn: Any, sql: str, values: Sequence[Any], *, op: str, **_: Any) -> Any:
        fetch = fn.__name__ == "_fetchall"
        async with self._store._connection(op) as conn:
            if fetch:
                return await conn.fetch(_numbered(sql), *values)
            status = await conn.execute(_numbered(sql), *values)
            return int(status.rsplit(" ", 1)[-1])


class _Acquire:
    """``async with store._connection(op) as conn``: a pooled connection whose driver
    errors become ``StoreError``."""

    def __init__(self, store: PostgresStore, op: str) -> None:
        self._store, self._op = store, op
        self._ctx: Any = None

    async def __aenter__(self) -> Any:
        pool = self._store._pool
        if pool is None:
            raise StoreError(f"{self._store!r} is not open; use 'async with store:' first.")
        self._ctx = pool.acquire()
        try:
            return await self._ctx.__aenter__()
        except _DRIVER_ERRORS as exc:
            raise self._store._error(self._op, exc) from exc

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        await self._ctx.__aexit__(kind, exc, tb)
        if exc is None or isinstance(exc, CarrierError):
            return
        if isinstance(exc, _DRIVER_ERRORS):
            raise self._store._error(self._op, exc) from exc


class PostgresStore(PgCacheMixin, RecordsMixin, MemoryStore):
    """A ``MemoryStore`` on PostgreSQL with the pgvector extension.

    Args:
        url: ``postgresql://user:password@host:port/database`` (also ``postgres://``
            and ``postgresql+asyncpg://``); query options are passed to asyncpg.
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens.
        hnsw_m: Links per node of the HNSW index, used when the index is created.
        hnsw_ef_construction: Candidate list size while building the HNSW index
            (at least ``2 * hnsw_m``), used when the index is created.
        hnsw_ef_search: Candidate list size while searching (``hnsw.ef_search``,
            1 to 1000), set on every pooled connection; a search with a larger
            ``limit`` raises it to the limit for that query.

    Raises:
        ConfigurationError: The URL is invalid.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 128,
        hnsw_ef_search: int = 200,
    ) -> None:
        self.target: PostgresTarget = parse_postgres_url(url)
        self.url = self.target.redacted
        self._min_size, self._max_size = min_size, max_size
        self._hnsw = pg_schema.HnswOptions(m=hnsw_m, ef_construction=hnsw_ef_construction)
        self._ef_search = hnsw_ef_search
        self._pool: Any = None
        self._db = _Pool(self)  # type: ignore[assignment]
        self._dimension: int | None = None
        #: Sets a search found larger than pg_search.EXACT_ROWS (the agent's knowledge),
        #: by pg_search.set_key, until when they are not listed again (monotonic time).
        self._large_sets: dict[tuple[Any, ...], float] = {}

    def __repr__(self) -> str:
        return f"<PostgresStore {self.url!r}>"

    def _remember_large(self, key: tuple[Any, ...], now: float) -> None:
        """Skip listing this set for :data:`LARGE_SET_TTL_S` (a set rarely shrinks
        below pg_search.EXACT_ROWS; if it did, the HNSW path still answers)."""
        if len(self._large_sets) > 10_000:
            self._large_sets.clear()
        self._large_sets[key] = now + LARGE_SET_TTL_S

    def _error(self, op: str, exc: BaseException) -> StoreError:
        if isinstance(exc, OSError):
            return StoreError(
                f"Cannot reach the PostgreSQL server at {self.target.host} ({self.url}) while "
                f"{op}: {exc}. Is it running, and is CARRIER_DATABASE_URL right?"
            )
        return StoreError(f"PostgreSQL ({self.url}) failed while {op}: {exc}")

    def _connection(self, op: str) -> _Acquire:
        return _Acquire(self, op)

    # lifecycle
    async def open(self) -> None:
        """Connect, create the pgvector extension and the schema (or migrate it),
        then open the pool."""
        try:
            conn = await asyncpg.connect(self.target.dsn)
        except (
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
        ) as exc:
            raise ConfigurationError(
                f"PostgreSQL at {self.target.host} refused {self.url}: {exc}. "
                f"Check the user, password and database in CARRIER_DATABASE_URL."
            ) from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("connecting", exc) from exc
        try:
            try:
                async with conn.transaction():  # two first opens would both create it
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", pg_schema.SCHEMA_LOCK)
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except asyncpg.PostgresError as exc:
                raise ConfigurationError(
                    f"PostgreSQL ({self.url}) has no usable pgvector extension: {exc}. "
                    f"Install pgvector on the server, or have an administrator run "
                    f"'CREATE EXTENSION vector' in the database."
                ) from exc
            try:
                self._dimension = await pg_schema.open_schema(conn, self.url, hnsw=self._hnsw)
            except asyncpg.PostgresError as exc:
                raise self._error("creating or migrating the schema", exc) from exc
        finally:
            await conn.close()
        try:
            self._pool = await asyncpg.create_pool(
                self.target.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                init=register_vector_codec,
                reset=_keep_session,
                # Startup parameters: they survive the RESET ALL that asyncpg runs
                # when a connection goes back to the pool (a SET would not).
                server_settings={
                    "hnsw.ef_search": str(self._ef_search),
                    # pgvector >= 0.8: keep scanning the index past rows the WHERE
                    # clause filters out, so a room or type filter still gets `limit`
                    # rows; older versions ignore it.
                    "hnsw.iterative_scan": "relaxed_order",
                },
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("opening the connection pool", exc) from exc

    async def close(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def embedding_dimension(self) -> int | None:
        return self._dimension

    # agents, entities, rooms and participants: the SQLite statements are portable
    upsert_agent = SqlStore.upsert_agent
    get_agent = SqlStore.get_agent
    upsert_entity = SqlStore.upsert_entity
    upsert_room = SqlStore.upsert_room
    get_room = SqlStore.get_room
    create_room = SqlStore.create_room
    upsert_participant = SqlStore.upsert_participant
    get_participant = SqlStore.get_participant
    set_participant_state = SqlStore.set_participant_state
    get_rooms_for_entity = SqlStore.get_rooms_for_entity
    count_memories = SqlStore.count_memories

    async def create_room_with(self, room: Room, participants: Sequence[Participant]) -> bool:
        async with self._connection("creating a room") as conn:
            created = await conn.fetchval(
                _CREATE_ROOM_WITH,
                room.id,
                room.agent_id,
                room.model_dump_json(),
                [p.entity_id for p in participants],
                [p.state.value for p in participants],
                [p.role.value for p in participants],
            )
        return bool(created)

    async def get_participants(self, room_id: str) -> list[Participant]:
        rows = await self._fetch(
            "SELECT room_id, entity_id, state, role FROM participants WHERE room_id = ? "
            "ORDER BY entity_id",
            (room_id,),
            op="reading participants",
        )
        return [
            Participant(room_id=room, entity_id=entity, state=state, role=role)
            for room, entity, state, role in rows
        ]

    async def get_room_with_actors(
        self, room_id: str
    ) -> tuple[Room | None, list[Participant], list[Entity]]:
        rows = await self._fetch(
            ROOM_WITH_ACTORS + "ORDER BY p.entity_id",
            (room_id,),
            op="reading a room with its participants",
        )
        return room_with_actors(rows)

    async def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return []
        rows = await self._fetch(
            "SELECT data FROM entities WHERE id = ANY(?::text[])", (ids,), op="reading entities"
        )
        return [Entity.model_validate_json(row[0]) for row in rows]

    # memories
    async def create_memory(self, memory: Memory) -> bool:
        return await self._create_memory(memory, _CREATE_MEMORY, ())

    async def create_memory_with_cache(
        self,
        memory: Memory,
        entries: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        release: Mapping[str, Any] | None = None,
    ) -> bool:
        extra = _entry_params(entries, ttl_s, time.time())
        if not release:
            return await self._create_memory(memory, _CREATE_MEMORY_WITH_CACHE, extra)
        released = (list(release), [encode_cache(k, v) for k, v in release.items()])
        return await self._create_memory(memory, _CREATE_MEMORY_RELEASING, (*extra, *released))

    async def create_memory_reading_turn(
        self,
        memory: Memory,
        entries: Mapping[str, Any],
        turn: TurnQuery,
        *,
        ttl_s: float | None = None,
    ) -> tuple[bool, TurnReads | None]:
        now = time.time()
        extra = (*_entry_params(entries, ttl_s, now), *_turn_params(turn, now))
        rows = await self._create_memory_rows(memory, _CREATE_MEMORY_READING_TURN, extra)
        if rows[0]["created"] is None:
            return False, None
        reads = _turn_reads(rows, turn)
        return True, TurnReads(
            participant=reads.participant,
            goals=reads.goals,
            history=with_new_memory(reads.history, memory, turn),
            cache=reads.cache | {k: v for k, v in entries.items() if k in turn.cache_keys},
        )

    async def _create_memory(self, memory: Memory, sql: str, extra: tuple[Any, ...]) -> bool:
        """One statement (one round trip): whether it returned the new memory's seq."""
        return bool(await self._create_memory_rows(memory, sql, extra))

    async def _create_memory_rows(
        self, memory: Memory, sql: str, extra: tuple[Any, ...]
    ) -> list[Any]:
        """One statement (one round trip) once the embedding's dimension is known."""
        embedding = memory.embedding
        values = (
            *memory_params(memory),
            None if embedding is None else len(embedding),
            None if embedding is None else list(embedding),
            _question_of(memory.id, memory.agent_id),
            *extra,
        )
        if embedding is not None and len(embedding) != self._dimension:
            # No dimension known yet (record it), or a wrong one (raise).
            async with self._connection("storing a memory") as conn, conn.transaction():
                recorded = await self._record_dimension(conn, len(embedding))
                if recorded != len(embedding):
                    raise EmbeddingDimensionError(recorded=recorded, found=len(embedding))
                rows: list[Any] = await conn.fetch(sql, *values)
                return rows
        async with self._connection("storing a memory") as conn:
            rows = await conn.fetch(sql, *values)
        return rows

    async def _record_dimension(self, conn: Any, found: int) -> int:
        """The recorded dimension; records ``found`` (and fixes the column) if none."""
        recorded = await conn.fetchval(
            "INSERT INTO carrier_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING "
            "RETURNING value",
            pg_schema.DIMENSION_KEY,
            str(found),
        )
        if recorded is not None:
            await pg_schema.fix_dimension(conn, found, hnsw=self._hnsw)
        else:
            recorded = await conn.fetchval(
                "SELECT value FROM carrier_meta WHERE key = $1", pg_schema.DIMENSION_KEY
            )
        self._dimension = int(recorded)
        return self._dimension

    async def read_turn(
        self,
        *,
        agent_id: str,
        room_id: str,
        history_limit: int,
        cache_keys: Sequence[str] = (),
    ) -> TurnReads:
        turn = TurnQuery(agent_id, room_id, history_limit, tuple(cache_keys))
        async with self._connection("reading a room's state") as conn:
            rows = await conn.fetch(_READ_TURN, *_turn_params(turn, time.time()))
        return _turn_reads(rows, turn)

    async def get_memory(self, memory_id: str) -> Memory | None:
        async with self._connection("reading a memory") as conn:
            row = await conn.fetchrow(f"{_MEMORY} WHERE m.id = $1", memory_id)
        return None if row is None else _memory(row)

    async def get_memories_by_id(self, memory_ids: Sequence[str]) -> list[Memory]:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return []
        async with self._connection("reading memories") as conn:
            rows = await conn.fetch(f"{_MEMORY} WHERE m.id = ANY($1::text[])", ids)
        found = {memory.id: memory for memory in map(_memory, rows)}
        return [found[i] for i in ids if i in found]

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
        type_ = None if type is None else MemoryType(type).value
        if scope is not None:
            filters = Filters(agent_id, room_id, entity_id, type_, before)
            sql, args = pg_search.scoped_select(_MEMORY, filters.parts(scope), limit)
            async with self._connection("reading memories") as conn:
                rows = await conn.fetch(sql, *args)
            return [_memory(row) for row in reversed(rows)]
        where = ["m.agent_id = $1"]
        values: list[Any] = [agent_id]
        for column, value, op in (
            ("room_id", room_id, "="),
            ("entity_id", entity_id, "="),
            ("type", type_, "="),
            ("created_at", before, "<"),
        ):
            if value is not None:
                values.append(value)
                where.append(f"m.{column} {op} ${len(values)}")
        values.append(limit)
        async with self._connection("reading memories") as conn:
            rows = await conn.fetch(
                f"{_MEMORY} WHERE {' AND '.join(where)} "
                f"ORDER BY m.created_at DESC, m.seq DESC LIMIT ${len(values)}",
                *values,
            )
        return [_memory(row) for row in reversed(rows)]

    async def delete_memory(self, memory_id: str) -> bool:
        async with self._connection("deleting a memory") as conn, conn.transaction():
            row = await conn.fetchrow(
                "DELETE FROM memories WHERE id = $1 RETURNING seq, agent_id", memory_id
            )
            if row is None:
                return False
            await conn.execute("DELETE FROM embeddings WHERE memory_seq = $1", row[0])
            await conn.execute("DELETE FROM pending_messages WHERE memory_id = $1", memory_id)
            question = _question_of(memory_id, row[1])
            if question is not None:
                await conn.execute(_ADD_PENDING, question)
        return True

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
        query = list(embedding)
        type_ = None if type is None else MemoryType(type).value
        filters = Filters(agent_id, room_id, entity_id, type_)
        # An entity's or a scope's sets are often small: listed with the dimension, then
        # searched exactly or with HNSW (see pg_search).
        parts = filters.parts(scope) if entity_id is not None or scope is not None else []
        now = time.monotonic()
        keys = [pg_search.set_key(part) for part in parts]
        known_large = {i for i, key in enumerate(keys) if self._large_sets.get(key, 0.0) > now}
        read, part_values = pg_search.listing(_DIMENSION, parts, known_large)
        async with self._connection("searching memories") as conn, conn.transaction():
            found = await conn.fetchrow(read, pg_schema.DIMENSION_KEY, *part_values)
            for index, rows in enumerate(found[2:] if parts else []):
                if rows is None and index not in known_large:
                    self._remember_large(keys[index], now)
            if found[0] is None:
                return []
            self._dimension = recorded = int(found[0])
            if len(query) != recorded:
                raise EmbeddingDimensionError(recorded=recorded, found=len(query))
            if limit <= 0:
                return []
            if limit > self._ef_search:  # HNSW returns at most ef_search rows per pass
                await conn.execute(f"SET LOCAL hnsw.ef_search = {min(limit, 1000)}")
            sql, values = _search_sql(query, filters, parts, found[1:], 1.0 - threshold, limit)
            rows = await conn.fetch(sql, *values) if sql else []
        return [
            ScoredMemory(memory=_memory(row), similarity=1.0 - float(row["distance"]))
            for row in rows
        ]

    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        if limit <= 0:
            return []
        async with self._connection("reading unanswered messages") as conn:
            rows = await conn.fetch(
                f"{_MEMORY} JOIN pending_messages AS p ON p.memory_seq = m.seq "
                "WHERE p.agent_id = $1 ORDER BY p.created_at, p.memory_seq LIMIT $2",
                agent_id,
                limit,
            )
        return [_memory(row) for row in rows]
