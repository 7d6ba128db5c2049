"""The SQLite connection: driver choice, pragmas, retries and error translation.

All SQL runs on one aiosqlite connection, whose worker thread executes one
Python function per store call (a whole transaction in a single hop between the
event loop and the thread). ``sqlean`` (sqlean-py) is the driver when installed:
it can load SQLite extensions such as sqlite-vec, which some Python builds
cannot; the standard ``sqlite3`` module is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

import aiosqlite

from carrier.errors import ConfigurationError, StoreError

__all__ = ["Database", "transaction"]

T = TypeVar("T")


def _driver() -> ModuleType:
    """``sqlean`` if installed (it loads extensions everywhere), else ``sqlite3``."""
    try:
        return importlib.import_module("sqlean")
    except ImportError:  # pragma: no cover - sqlean-py is a dependency
        return importlib.import_module("sqlite3")


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` on any exception.

    ``IMMEDIATE`` takes the write lock up front, so a busy database is waited
    for (busy timeout) instead of failing when a read would turn into a write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Database:
    """One aiosqlite connection with retries and errors translated to ``StoreError``.

    Args:
        path: The database file, or ``None`` for an in-memory database.
        busy_timeout_s: How long SQLite waits for another writer's lock.
        write_retry_s: How long a call keeps retrying while the file stays locked.
        load_vec: Whether to load the sqlite-vec extension.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        busy_timeout_s: float = 5.0,
        write_retry_s: float = 30.0,
        load_vec: bool = False,
    ) -> None:
        self.path = path
        self.where = repr(str(path)) if path is not None else "':memory:'"
        self.busy_timeout_s = busy_timeout_s
        self.write_retry_s = write_retry_s
        self.load_vec = load_vec
        self.driver = _driver()
        self._conn: aiosqlite.Connection | None = None
        self._calls = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._checkpoint_conn: Any = None

    def _connect(self) -> Any:
        target = ":memory:" if self.path is None else str(self.path)
        conn = self.driver.connect(
            target, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_s
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            # Fails here, not later, if the file is not a database.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if self.path is not None:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(
                        f"The database {self.where} could not switch to WAL mode (it is in "
                        f"{mode!r} mode); put it on a local file system that supports it."
                    )
            # Durable on application crash; a power cut may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA cache_size = -32000")
            # Checkpoints (which fsync) run in a background thread, not in commits.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            if self.load_vec:
                self._load_vec(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _load_vec(self, conn: Any) -> None:
        if not hasattr(conn, "enable_load_extension"):
            raise ConfigurationError(
                f"vector_search='sqlite-vec' needs a SQLite driver that loads extensions, "
                f"and this Python's {self.driver.__name__!r} cannot. Install sqlean-py "
                f"(pip install sqlean-py) or use vector_search='numpy'."
            )
        import sqlite_vec

        conn.enable_load_extension(True)
        try:
            sqlite_vec.load(conn)
        finally:
            conn.enable_load_extension(False)

    async def open(self) -> None:
        """Connect, retrying while another process holds the file locked."""
        if self.path is not None:
            self._prepare_folder(self.path)
        # Connect and configure in a worker thread first, so a failure never
        # leaves an aiosqlite thread behind; then hand the ready connection over.
        try:
            raw = await asyncio.to_thread(self._with_retry, self._connect)
        except (self.driver.Error, OSError) as exc:
            raise self._translate(exc, "opening it") from exc
        self._conn = await aiosqlite.Connection(lambda: raw, 64)

    def _prepare_folder(self, path: Path) -> None:
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder {str(folder)!r} for the database {self.where}: "
                f"{exc.strerror or exc}. Create it, or point CARRIER_DATABASE_URL elsewhere."
            ) from exc
        if path.is_dir():
            raise StoreError(
                f"The database path {self.where} is a folder; give a file name, e.g. "
                f"'sqlite:///{path / 'carrier.db'}'."
            )

    async def close(self) -> None:
        """Finish a running checkpoint, then close the connection (idempotent)."""
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
            self._checkpoint = None
        if self._checkpoint_conn is not None:
            await asyncio.to_thread(self._checkpoint_conn.close)
            self._checkpoint_conn = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await _in_thread(conn)(_optimize, conn._conn)
            await conn.close()

    async def run(self, fn: Callable[..., T], *args: Any, op: str) -> T:
        """Run ``fn(conn, *args)`` in the connection's thread, with retries.

        Args:
            fn: A synchronous function of the driver connection; it runs alone
                (one transaction per call, never interleaved with another).
            *args: Passed after the connection.
            op: What is being done, for error messages ("storing a memory").

        Returns:
            What ``fn`` returned.

        Raises:
            StoreError: The driver failed; the message says what and what to do.
        """
        conn = self._conn
        if conn is None:
            raise StoreError(
                f"The SQL store {self.where} is not open; use 'async with store:' or "
                f"'await store.open()' before {op}."
            )
        try:
            result = await _in_thread(conn)(self._with_retry, fn, conn._conn, *args)
            return cast(T, result)
        except (self.driver.Error, OSError) as exc:
            raise self._translate(exc, op) from exc

    def _with_retry(self, fn: Callable[..., T], *args: Any) -> T:
        deadline = time.monotonic() + self.write_retry_s
        delay = 0.002
        while True:
            try:
                return fn(*args)
            except self.driver.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _translate(self, exc: BaseException, op: str) -> StoreError:
        text = str(exc)
        lower = text.lower()
        if "not a database" in lower or "malformed" in lower or "corrupt" in lower:
            return StoreError(
                f"The file {self.where} is not a SQLite database or is corrupt ({text}) "
                f"while {op}. Restore it from a backup, or move it aside and start again."
            )
        if "readonly" in lower or "read-only" in lower or "unable to open" in lower:
            return StoreError(
                f"Cannot write the database {self.where} while {op} ({text}). Check that "
                f"the file and its folder exist and are writable by this user, or point "
                f"CARRIER_DATABASE_URL elsewhere."
            )
        if _is_busy(exc):
            return StoreError(
                f"The database {self.where} stayed locked by another process for "
                f"{self.write_retry_s:g} s while {op} ({text}). Stop the other process or "
                f"raise CARRIER_SQL_WRITE_RETRY_S."
            )
        if isinstance(exc, OSError):
            return StoreError(f"The database {self.where} failed while {op}: {exc}.")
        return StoreError(
            f"The SQL store {self.where} failed while {op}: {type(exc).__name__}: {text}."
        )


def _in_thread(conn: aiosqlite.Connection) -> Callable[..., Awaitable[Any]]:
    """``conn._execute``: runs ``fn(*args)`` in the connection's thread, in order.

    aiosqlite's only way to run a whole function (a transaction) in one hop; it is
    private but unchanged from 0.17 to 0.22 (the dependency is pinned below 0.23).
    """
    return cast(Callable[..., Awaitable[Any]], conn._execute)


#: Store calls between two background WAL checkpoints.
_CHECKPOINT_EVERY = 500


def _optimize(conn: Any) -> None:
    conn.execute("PRAGMA optimize")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
