"""The job queue on PostgreSQL: procrastinate's app, schema, queue and lock names.

One job per message, task :data:`TASK`, on the queue of its agent (so a worker
takes only the agents it hosts) with a lock per room: procrastinate starts a
locked job only when no earlier job of the same lock is waiting or running, which
keeps each room's messages one at a time, in the order they were enqueued.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
import psycopg_pool
from carrier_plugin_sql.pg_url import PostgresTarget, parse_postgres_url

from carrier.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from carrier.settings import CarrierSettings
    from carrier_plugin_workers.settings import WorkersSettings

__all__ = [
    "QUEUE_ERRORS",
    "TASK",
    "QueueUnreachableError",
    "build_app",
    "ensure_schema",
    "is_connection_error",
    "queue_error",
    "queue_for",
    "queue_target",
    "room_lock",
]

#: The task every message job runs.
TASK = "carrier.handle_message"

#: Serializes schema creation between processes starting together.
_SCHEMA_LOCK = int.from_bytes(hashlib.blake2b(b"carrier-workers-schema", digest_size=7).digest())

#: Errors a queue call raises: the driver's, wrapped by procrastinate or not.
QUEUE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    psycopg.Error,
    procrastinate.exceptions.ConnectorException,
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) means PostgreSQL is unreachable or went away."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (OSError, psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        seen = seen.__cause__
    return False


def was_pruned(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says this worker's registration is gone: a
    peer pruned it as stalled while its heartbeats failed (PostgreSQL was away), so
    taking a job under its old id breaks the jobs' foreign key to the workers."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.errors.ForeignKeyViolation):
            return seen.diag.constraint_name == "procrastinate_jobs_worker_id_fkey"
        seen = seen.__cause__
    return False


def queue_for(agent_id: str) -> str:
    """The queue of an agent's messages: short, since PostgreSQL's NOTIFY channel
    names (procrastinate's prefix plus the queue) stop at 63 bytes."""
    return "carrier:" + hashlib.blake2b(agent_id.encode(), digest_size=12).hexdigest()


def room_lock(agent_id: str, room_id: str) -> str:
    """The lock that keeps one room's messages in order."""
    return f"{agent_id}/{room_id}"


def queue_target(settings: WorkersSettings, carrier_settings: CarrierSettings) -> PostgresTarget:
    """Where the queue lives: ``CARRIER_WORKERS_DATABASE_URL``, else ``CARRIER_DATABASE_URL``.

    Raises:
        ConfigurationError: Neither is set, or the URL is not a PostgreSQL URL.
    """
    url = settings.database_url or carrier_settings.database_url
    if not url:
        raise ConfigurationError(
            "The workers executor keeps its queue in PostgreSQL, and no URL is set: set "
            "CARRIER_DATABASE_URL (or CARRIER_WORKERS_DATABASE_URL) to "
            "'postgresql://user:password@host:5432/database'."
        )
    try:
        return parse_postgres_url(url)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"The workers executor keeps its queue in PostgreSQL: {exc} Set "
            f"CARRIER_WORKERS_DATABASE_URL (or CARRIER_DATABASE_URL) to a PostgreSQL URL."
        ) from exc


class QueueUnreachableError(StoreError):
    """The queue's PostgreSQL cannot be reached (down, restarting or misnamed)."""


def queue_error(target: PostgresTarget, doing: str, exc: BaseException) -> StoreError:
    """A typed error for a failed queue call: ``QueueUnreachableError`` when the
    server cannot be reached, else ``StoreError`` with the driver's reason."""
    cause: BaseException = exc
    while isinstance(cause, procrastinate.exceptions.ConnectorException) and cause.__cause__:
        cause = cause.__cause__
    reason = str(cause).strip() or type(cause).__name__
    if is_connection_error(exc):
        return QueueUnreachableError(
            f"Cannot reach the job queue's PostgreSQL at {target.host} ({target.redacted}) "
            f"while {doing}: {reason}. Is it running, and is CARRIER_DATABASE_URL right?"
        )
    return StoreError(f"The job queue ({target.redacted}) failed while {doing}: {reason}")


def build_app(target: PostgresTarget, settings: WorkersSettings) -> procrastinate.App:
    """An unopened procrastinate app on the queue database."""
    connector = procrastinate.PsycopgConnector(
        conninfo=target.dsn,
        min_size=1,
        max_size=settings.pool_size,
        configure=_autocommit,
        pool_factory=_pool,
    )
    return procrastinate.App(connector=connector)


def _pool(**options: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool without its check before each use: that check is an empty
    query, a round trip and a transaction of its own (about 4 a message). A connection
    the server closed fails its next call instead; psycopg marks it broken, the pool
    replaces it, and the callers retry (``retries.py``)."""
    return psycopg_pool.AsyncConnectionPool(**{**options, "check": _check_locally})


async def _check_locally(conn: psycopg.AsyncConnection[Any]) -> None:
    """Refuse a connection already known to be lost, without a round trip."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection to the job queue was lost")


async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every queue call is one statement (a procrastinate SQL function, atomic on its
    own); in autocommit psycopg sends no BEGIN and COMMIT around it, two round trips
    fewer per call (procrastinate's own LISTEN connection is autocommit already)."""
    await conn.set_autocommit(True)


async def ensure_schema(target: PostgresTarget) -> None:
    """Create procrastinate's tables unless they exist (once, under an advisory lock).

    Raises:
        ConfigurationError: The server refused the credentials or the database.
        StoreError: The server cannot be reached.
    """
    try:
        conn = await psycopg.AsyncConnection.connect(target.dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password" in text or "does not exist" in text or "authentication" in text:
            raise ConfigurationError(
                f"PostgreSQL at {target.host} refused {target.redacted}: {text.strip()} "
                f"Check the user, password and database in the URL."
            ) from exc
        raise queue_error(target, "connecting", exc) from exc
    async with conn:
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cursor.fetchone()
            if not (row and row[0]):
                schema = procrastinate.schema.SchemaManager.get_schema()
                await conn.execute(schema)
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        except psycopg.Error as exc:
            raise queue_error(target, "creating the queue's tables", exc) from exc
