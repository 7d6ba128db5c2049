"""The database schema: SQLModel tables, indexes, triggers and migrations.

Column types are portable (strings, floats, integers, booleans, binary, JSON
documents), so the same tables serve PostgreSQL. On SQLite, JSON documents are
``TEXT`` (a column declared ``JSON`` would get numeric affinity and turn ``"42"``
into ``42``), sequence columns are ``INTEGER PRIMARY KEY AUTOINCREMENT`` (a rowid
that is never reused), and small triggers keep the queue of unanswered messages.

The schema version lives in ``carrier_meta``; :func:`migrate` creates the current
schema in an empty database, brings an older one up to :data:`SCHEMA_VERSION` when
the store opens (:mod:`carrier_plugin_sql.opening`, which imports this module only
then), and refuses a newer one.

Version 2 added memories' ``scope`` (where a memory may reach a prompt, see
``carrier.types.MemoryScope``), copied with ``entity_id`` into ``embeddings``, and the
indexes that make a scoped read or search a union of three small indexed sets: the
scope's room, the direct memories of its entity, the agent's own memories. Version 3
made SQLite's ``cache`` table ``WITHOUT ROWID`` (PostgreSQL's is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, LargeBinary, Text, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import registry
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel

from carrier.errors import StoreError
from carrier_plugin_sql.opening import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "AgentRow",
    "CacheRow",
    "EmbeddingRow",
    "EntityRow",
    "GoalRow",
    "LogRow",
    "MemoryRow",
    "MetaRow",
    "ParticipantRow",
    "PendingRow",
    "RoomRow",
    "TaskRow",
    "migrate",
]


class _Row(SQLModel, registry=registry()):
    """Base of this plugin's tables: their own registry and ``MetaData``, so the
    names cannot clash with another package's SQLModel tables."""


def _json() -> Any:
    """A JSON document column type: ``TEXT`` on SQLite, ``JSON`` elsewhere."""
    return JSON().with_variant(Text(), "sqlite")


class _PgVector(UserDefinedType[Any]):
    """pgvector's ``vector`` type (its dimension is fixed by the first embedding)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


def _vector() -> Any:
    """An embedding column: float32 bytes on SQLite, pgvector's ``vector`` on PostgreSQL."""
    return LargeBinary().with_variant(_PgVector(), "postgresql")


def _seq() -> Any:
    """A 64-bit sequence type; on SQLite the ``INTEGER`` that aliases the rowid."""
    return BigInteger().with_variant(Integer(), "sqlite")


class MetaRow(_Row, table=True):
    """Key/value facts about the database: schema version, embedding dimension."""

    __tablename__ = "carrier_meta"
    key: str = Field(primary_key=True)
    value: str


class AgentRow(_Row, table=True):
    """An agent (a character)."""

    __tablename__ = "agents"
    id: str = Field(primary_key=True)
    name: str
    data: str = Field(sa_type=_json())


class EntityRow(_Row, table=True):
    """A user, another agent, or the agent itself."""

    __tablename__ = "entities"
    id: str = Field(primary_key=True)
    agent_id: str = Field(index=True)
    data: str = Field(sa_type=_json())


class RoomRow(_Row, table=True):
    """A conversation."""

    __tablename__ = "rooms"
    id: str = Field(primary_key=True)
    agent_id: str = Field(index=True)
    data: str = Field(sa_type=_json())


class ParticipantRow(_Row, table=True):
    """An entity's membership of a room, with its follow/mute state and role."""

    __tablename__ = "participants"
    room_id: str = Field(primary_key=True)
    entity_id: str = Field(primary_key=True, index=True)
    state: str = "none"
    role: str = "member"


def _where(scope: str) -> dict[str, Any]:
    """The predicate of a partial index of the memories of one ``scope`` (queries
    name the scope as the same literal, so both databases use the index)."""
    return {
        "sqlite_where": text(f"scope = '{scope}'"),
        "postgresql_where": text(f"scope = '{scope}'"),
    }


#: On SQLite ``memory_seq`` is the rowid, in every index already.
_include: dict[str, Any] = {"postgresql_include": ["memory_seq"]}


class MemoryRow(_Row, table=True):
    """A message, fact, document, fragment, description, ...

    ``seq`` orders memories created in the same instant and is never reused;
    ``id`` is the memory's public id; ``scope`` says where it may be seen (a
    ``MemoryScope`` value).
    """

    __tablename__ = "memories"
    __table_args__ = (
        # "Recent messages of a room": an index range scan, constant in history size.
        Index("ix_memories_room", "agent_id", "room_id", "created_at", "seq"),
        Index("ix_memories_entity", "agent_id", "entity_id", "created_at", "seq"),
        Index("ix_memories_type", "agent_id", "type", "created_at", "seq"),
        Index("ix_memories_agent", "agent_id", "created_at", "seq"),
        # The three sets of a scoped read of one type, each a range in time order: the
        # room's, the entity's direct memories, the agent's own. The last two are
        # partial (only such memories) and cover the read (room_id, entity_id).
        Index("ix_memories_room_type", "agent_id", "room_id", "type", "created_at", "seq"),
        Index(
            "ix_memories_direct",
            *("agent_id", "entity_id", "type", "created_at", "seq", "room_id"),
            **_where("direct"),
        ),
        Index(
            "ix_memories_agent_scope",
            *("agent_id", "type", "created_at", "seq", "room_id", "entity_id"),
            **_where("agent"),
        ),
        {"sqlite_autoincrement": True},
    )
    seq: int | None = Field(default=None, sa_type=_seq(), primary_key=True)
    id: str = Field(unique=True)
    agent_id: str
    entity_id: str
    room_id: str
    world_id: str | None = None
    type: str
    content: str = Field(sa_type=_json())
    created_at: float
    is_unique: bool = False
    internal: bool = False
    meta: str = Field(sa_type=_json())
    scope: str = Field(default="room", sa_column_kwargs={"server_default": "room"})


class EmbeddingRow(_Row, table=True):
    """A memory's embedding (float32 bytes on SQLite, ``vector`` on PostgreSQL), with its
    filters copied: a search filters here without reading ``memories``."""

    __tablename__ = "embeddings"
    __table_args__ = (
        # A room's embeddings, an entity's (and its direct ones, for a scoped search) and
        # the agent's own (knowledge, in every scope): the sets of a scoped search. Each
        # holds the columns of its set's filters and (PostgreSQL) memory_seq, so listing
        # a set, to decide between exact and HNSW search, reads the index only.
        Index("ix_embeddings_filter", "agent_id", "room_id", "type", **_include),
        Index(
            "ix_embeddings_entity",
            *("agent_id", "entity_id", "type", "scope", "room_id"),
            **_include,
        ),
        Index(
            "ix_embeddings_agent_scope",
            *("agent_id", "type", "room_id"),
            **_where("agent"),
            **_include,
        ),
    )
    memory_seq: int = Field(
        sa_type=_seq(), primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    memory_id: str = Field(unique=True)
    agent_id: str
    room_id: str
    type: str
    dimension: int
    vector: bytes = Field(sa_type=_vector())
    entity_id: str
    scope: str = Field(default="room", sa_column_kwargs={"server_default": "room"})


class PendingRow(_Row, table=True):
    """A message with no stored response yet (kept by triggers on ``memories``)."""

    __tablename__ = "pending_messages"
    __table_args__ = (Index("ix_pending_agent", "agent_id", "created_at", "memory_seq"),)
    memory_id: str = Field(primary_key=True)
    agent_id: str
    created_at: float
    memory_seq: int = Field(sa_type=_seq())


class GoalRow(_Row, table=True):
    """A goal and its objectives."""

    __tablename__ = "goals"
    __table_args__ = (Index("ix_goals_agent", "agent_id", "room_id", "created_at"),)
    id: str = Field(primary_key=True)
    agent_id: str
    room_id: str | None = None
    status: str
    created_at: float
    data: str = Field(sa_type=_json())


class TaskRow(_Row, table=True):
    """A scheduled task."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_agent", "agent_id", "due_at"),)
    id: str = Field(primary_key=True)
    agent_id: str
    due_at: float | None = None
    created_at: float
    data: str = Field(sa_type=_json())


class CacheRow(_Row, table=True):
    """A JSON value under a key, with an optional expiry time."""

    __tablename__ = "cache"
    __table_args__ = {"sqlite_with_rowid": False}
    key: str = Field(primary_key=True)
    value: str = Field(sa_type=_json())
    expires_at: float | None = None


class LogRow(_Row, table=True):
    """An append-only log entry."""

    __tablename__ = "logs"
    __table_args__ = (
        Index("ix_logs_agent", "agent_id", "seq"),
        Index("ix_logs_room", "agent_id", "room_id", "seq"),
        {"sqlite_autoincrement": True},
    )
    seq: int | None = Field(default=None, sa_type=_seq(), primary_key=True)
    agent_id: str
    room_id: str | None = None
    type: str
    body: str = Field(sa_type=_json())
    created_at: float


#: Every table of the schema, in dependency order.
TABLES = list(_Row.metadata.sorted_tables)

# A message is pending until a memory with id "{message id}-{agent id}" exists.
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER memories_pending_add AFTER INSERT ON memories
    WHEN NEW.type = 'message' AND NEW.entity_id <> NEW.agent_id AND NEW.internal = 0
    BEGIN
        INSERT OR IGNORE INTO pending_messages (memory_id, agent_id, created_at, memory_seq)
        SELECT NEW.id, NEW.agent_id, NEW.created_at, NEW.seq
        WHERE NOT EXISTS (SELECT 1 FROM memories WHERE id = NEW.id || '-' || NEW.agent_id);
    END""",
    """CREATE TRIGGER memories_pending_answer AFTER INSERT ON memories
    WHEN length(NEW.id) > length(NEW.agent_id) + 1
        AND substr(NEW.id, -length(NEW.agent_id) - 1) = '-' || NEW.agent_id
    BEGIN
        DELETE FROM pending_messages
        WHERE memory_id = substr(NEW.id, 1, length(NEW.id) - length(NEW.agent_id) - 1);
    END""",
    """CREATE TRIGGER memories_pending_delete AFTER DELETE ON memories
    BEGIN
        DELETE FROM pending_messages WHERE memory_id = OLD.id;
        INSERT OR IGNORE INTO pending_messages (memory_id, agent_id, created_at, memory_seq)
        SELECT m.id, m.agent_id, m.created_at, m.seq FROM memories AS m
        WHERE length(OLD.id) > length(OLD.agent_id) + 1
            AND substr(OLD.id, -length(OLD.agent_id) - 1) = '-' || OLD.agent_id
            AND m.id = substr(OLD.id, 1, length(OLD.id) - length(OLD.agent_id) - 1)
            AND m.agent_id = OLD.agent_id AND m.type = 'message'
            AND m.entity_id <> m.agent_id AND m.internal = 0;
    END""",
)


def sqlite_ddl() -> list[str]:
    """``CREATE`` statements for the current schema, in SQLite's dialect."""
    dialect = sqlite.dialect()
    statements = [str(CreateTable(table).compile(dialect=dialect)).strip() for table in TABLES]
    for table in TABLES:
        statements.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: i.name or "")
        )
    statements.extend(_SQLITE_TRIGGERS)
    return statements


#: Indexes added (or, ``ix_embeddings_filter``, changed) by version 2, by table.
_V2_INDEXES = {
    "memories": ("ix_memories_room_type", "ix_memories_direct", "ix_memories_agent_scope"),
    "embeddings": ("ix_embeddings_filter", "ix_embeddings_entity", "ix_embeddings_agent_scope"),
}


def scope_migration(dialect_name: str) -> list[str]:
    """The statements that bring a version 1 database to version 2 (``"sqlite"`` or
    ``"postgresql"``): memories get ``scope``, ``'room'`` except documents and
    fragments (the agent's knowledge), which get ``'agent'``; embeddings get copies of
    ``entity_id`` and ``scope``; then the new indexes. Rooms are JSON documents, so
    their new ``owner_id`` needs no column (an old room reads back without one).

    The result has the columns and indexes of a new database; on SQLite the added
    ``embeddings.entity_id`` keeps a ``DEFAULT ''`` (SQLite adds a ``NOT NULL``
    column only with a default), never used: every insert names it. The columns and
    indexes are compiled from the current tables: a later version that changes them
    must write this step's statements out as they are now.
    """
    dialect = sqlite.dialect() if dialect_name == "sqlite" else postgresql.dialect()  # type: ignore[no-untyped-call]
    memories, embeddings = MemoryRow.__table__, EmbeddingRow.__table__  # type: ignore[attr-defined]

    def column(table: Any, name: str) -> str:
        return str(CreateColumn(table.c[name]).compile(dialect=dialect)).strip()

    sqlite_ = dialect_name == "sqlite"
    statements = [
        f"ALTER TABLE memories ADD COLUMN {column(memories, 'scope')}",
        "UPDATE memories SET scope = 'agent' WHERE type IN ('document', 'fragment')",
        "DROP INDEX ix_embeddings_filter",  # created again below, with memory_seq (PostgreSQL)
        "ALTER TABLE embeddings ADD COLUMN entity_id VARCHAR"
        + (" NOT NULL DEFAULT ''" if sqlite_ else ""),
        f"ALTER TABLE embeddings ADD COLUMN {column(embeddings, 'scope')}",
        "UPDATE embeddings SET entity_id = m.entity_id, scope = m.scope "
        "FROM memories AS m WHERE m.seq = embeddings.memory_seq",
    ]
    if not sqlite_:
        statements.append("ALTER TABLE embeddings ALTER COLUMN entity_id SET NOT NULL")
    for table in (memories, embeddings):
        wanted = _V2_INDEXES[table.name]
        statements.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: i.name or "")
            if index.name in wanted
        )
    return statements


#: Version 3 rebuilds the SQLite cache table ``WITHOUT ROWID``: its rows live in the
#: primary key's B-tree, so a write (a lease, a recorded step) changes one tree, not a
#: table and its key index (about 30% less per write). PostgreSQL has nothing to change.
_CACHE_WITHOUT_ROWID = (
    'CREATE TABLE cache_v3 ("key" VARCHAR NOT NULL, value TEXT NOT NULL, expires_at FLOAT, '
    'PRIMARY KEY ("key")) WITHOUT ROWID',
    "INSERT INTO cache_v3 (key, value, expires_at) SELECT key, value, expires_at FROM cache",
    "DROP TABLE cache",
    "ALTER TABLE cache_v3 RENAME TO cache",
)


def _create(execute: Callable[[str], Any]) -> None:
    for statement in sqlite_ddl():
        execute(statement)


def _scopes(execute: Callable[[str], Any]) -> None:
    for statement in scope_migration("sqlite"):
        execute(statement)


def _cache_without_rowid(execute: Callable[[str], Any]) -> None:
    for statement in _CACHE_WITHOUT_ROWID:
        execute(statement)


#: ``version -> step`` that brings a database at ``version - 1`` to ``version``. An
#: empty database gets the current schema at once (:func:`sqlite_ddl`), no steps.
_MIGRATIONS: dict[int, Callable[[Callable[[str], Any]], None]] = {
    2: _scopes,
    3: _cache_without_rowid,
}


def migrate(execute: Callable[[str], Any], found: int, *, where: str) -> int:
    """Run the steps from ``found`` up to :data:`SCHEMA_VERSION`.

    Args:
        execute: Runs one SQL statement (inside the caller's transaction).
        found: The database's version; 0 for an empty database.
        where: The database, for error messages.

    Returns:
        The version the database is at now.

    Raises:
        StoreError: The database is newer than this code.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"The database {where} has schema version {found}, newer than the version "
            f"{SCHEMA_VERSION} this carrier-plugin-sql understands; it was written by a newer "
            f"release. Upgrade with: pip install -U carrier-plugin-sql (or point "
            f"CARRIER_DATABASE_URL at another file)."
        )
    if found == 0:
        _create(execute)
        return SCHEMA_VERSION
    for version in range(found + 1, SCHEMA_VERSION + 1):
        _MIGRATIONS[version](execute)
    return SCHEMA_VERSION
