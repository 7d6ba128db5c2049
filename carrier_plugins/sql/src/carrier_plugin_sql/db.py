"""The SQLite connection: driver choice, pragmas, retries and error translation.

One driver connection serves every store call, in one of two places:

- **inline, on the event loop's thread**, when no call is queued for the worker
  thread. An indexed read or a short write transaction on a local WAL file takes
  tens of microseconds, less than a hop to a thread and back. Inline calls use a
  busy timeout of 0, so the loop never waits for a lock: a call that finds the
  file locked (another process is writing) is rolled back and goes to the worker;
- **in aiosqlite's worker thread** otherwise: calls whose cost grows with the data
  (counts, searches, large reads), calls that found the file locked (there SQLite
  waits ``busy_timeout_s`` and the call is retried for ``write_retry_s``), and
  every call made while another one is queued, so calls still run one at a time
  and in order.

WAL checkpoints run on a second connection in a background thread (PASSIVE,
after every :data:`_CHECKPOINT_CHANGES` changed rows and at close), so the WAL
stays small and no commit pays for an fsync of the database file.

``sqlean`` (sqlean-py) is the driver when installed: it can load SQLite extensions
such as sqlite-vec, which some Python builds cannot; ``sqlite3`` is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

import aiosqlite
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

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
    """One SQLite connection, used inline or in a worker thread, with retries and
    errors translated to ``StoreError``.

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
        page_cache_kib: int = 32_000,
    ) -> None:
        self.path = path
        self.page_cache_kib = page_cache_kib
        self.where = repr(str(path)) if path is not None else "':memory:'"
        self.busy_timeout_s = busy_timeout_s
        self.write_retry_s = write_retry_s
        self.load_vec = load_vec
        self.driver = _driver()
        self._raw: Any = None  # the driver connection
        self._worker: aiosqlite.Connection | None = None
        self._queued = 0  # calls queued for (or running in) the worker thread
        self._drained: list[asyncio.Future[None]] = []  # inline calls waiting for it
        self._changes_mark = 0  # conn.total_changes at the last checkpoint
        # Checkpoints: their own thread and connection, a future per run.
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint: Future[None] | None = None
        self._checkpoint_conn: Any = None
        self._restart_wanted = False

    def _connect(self) -> Any:
        target = ":memory:" if self.path is None else str(self.path)
        conn = self.driver.connect(
            target, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_s
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
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
            # SQLite's page cache, per connection (a negative size is in KiB)
            conn.execute(f"PRAGMA cache_size = -{max(64, int(self.page_cache_kib))}")
            # Checkpoints (which fsync) run in a background thread, not in commits.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            # When the WAL starts over, a file larger than this is cut back to it.
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            if self.load_vec:
                self._load_vec(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def _busy_ms(self) -> int:
        return int(self.busy_timeout_s * 1000)

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
        self._worker = await aiosqlite.Connection(lambda: raw, 64)
        raw.execute("PRAGMA busy_timeout = 0")  # inline calls never wait for a lock
        self._raw = raw
        self._changes_mark = raw.total_changes

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
        """Finish a running checkpoint, then close the connections (idempotent)."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            if self._checkpoint is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(self._checkpoint)
                self._checkpoint = None
            if self._checkpoint_conn is not None:
                await asyncio.wrap_future(checkpointer.submit(self._checkpoint_conn.close))
                self._checkpoint_conn = None
            checkpointer.shutdown()
        raw, self._raw = self._raw, None  # no new calls, no new checkpoint
        if self._worker is not None:
            with contextlib.suppress(Exception):
                await self._in_worker(_optimize, raw, (), "closing")
            worker, self._worker = self._worker, None
            await worker.close()

    async def run(self, fn: Callable[..., T], *args: Any, op: str, inline: bool = True) -> T:
        """Run ``fn(conn, *args)`` inline when possible, else in the worker thread.

        Args:
            fn: A synchronous function of the driver connection; it runs alone
                (one transaction per call, never interleaved with another). It
                must be safe to run again after it failed on a locked database
                (its transaction rolled back).
            *args: Passed after the connection.
            op: What is being done, for error messages ("storing a memory").
            inline: Whether ``fn`` is short enough to run on the event loop's
                thread (an index lookup or a small write); ``False`` for calls
                whose cost grows with the data.

        Returns:
            What ``fn`` returned.

        Raises:
            StoreError: The driver failed; the message says what and what to do.
        """
        conn = self._raw
        if conn is None:
            raise StoreError(
                f"The SQL store {self.where} is not open; use 'async with store:' or "
                f"'await store.open()' before {op}."
            )
        if self._restart_wanted and (self._checkpoint is None or self._checkpoint.done()):
            # Copies the few frames the last PASSIVE checkpoint left and starts the
            # WAL over; the calls meanwhile wait for it without holding the loop.
            # If another process's reader keeps it from finishing, the next PASSIVE
            # checkpoint asks again.
            self._restart_wanted = False
            with contextlib.suppress(StoreError):
                await self._in_worker(_restart_wal, conn, (), "checkpointing the WAL")
        while inline and self._queued:
            # Wait for the worker to finish rather than queue behind it: a short call
            # that hopped to the thread whenever another task's call was there would
            # keep the next one hopping too (two tasks ping-pong for good, each hop a
            # thread switch); once the worker is idle the call runs inline.
            drained = asyncio.get_running_loop().create_future()
            self._drained.append(drained)
            await drained
            conn = self._raw
            if conn is None:
                raise StoreError(f"The SQL store {self.where} was closed while {op}.")
        if inline:
            try:
                result = fn(conn, *args)
            except self.driver.OperationalError as exc:
                if not _is_busy(exc):
                    raise self._translate(exc, op) from exc
                _rollback(conn)  # locked by another process: wait in the worker
            except (self.driver.Error, OSError) as exc:
                raise self._translate(exc, op) from exc
            else:
                if conn.total_changes - self._changes_mark >= _CHECKPOINT_CHANGES:
                    self._start_checkpoint(conn)
                return result
        return await self._in_worker(fn, conn, args, op)

    async def _in_worker(
        self, fn: Callable[..., T], conn: Any, args: tuple[Any, ...], op: str
    ) -> T:
        worker = self._worker
        assert worker is not None
        loop = asyncio.get_running_loop()
        self._queued += 1

        def job() -> T:
            try:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                try:
                    return self._with_retry(fn, conn, *args)
                finally:
                    conn.execute("PRAGMA busy_timeout = 0")
            finally:
                # Counted down once the thread is done with the connection, even
                # if the awaiting task was cancelled meanwhile.
                loop.call_soon_threadsafe(self._release)

        try:
            return cast(T, await _in_thread(worker)(job))
        except (self.driver.Error, OSError) as exc:
            raise self._translate(exc, op) from exc

    def _release(self) -> None:
        self._queued -= 1
        if not self._queued:
            waiting, self._drained = self._drained, []
            for drained in waiting:
                if not drained.done():
                    drained.set_result(None)
        conn = self._raw
        if (
            not self._queued
            and conn is not None
            and conn.total_changes - self._changes_mark >= _CHECKPOINT_CHANGES
        ):
            self._start_checkpoint(conn)

    def _start_checkpoint(self, conn: Any) -> None:
        """Checkpoint the WAL in a background thread, unless one is running."""
        if self.path is None or self._restart_wanted:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        self._changes_mark = conn.total_changes
        if self._checkpointer is None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="carrier-sql-checkpoint")
        # A thread's future: done without the loop's help, as inline calls may not
        # yield to the loop for a while.
        self._checkpoint = self._checkpointer.submit(self._checkpoint_now)

    def _checkpoint_now(self) -> None:
        """A PASSIVE checkpoint, which waits for no one: readers and writers go on.

        While writes go on, a PASSIVE checkpoint never catches up with the end of
        the WAL, so the WAL would never start over and its file would grow without
        bound. Once it holds :data:`_RESTART_FRAMES`, the next store call first
        runs a RESTART checkpoint in the worker thread (see :meth:`run`).
        """
        conn = self._checkpoint_conn
        if conn is None:
            assert self.path is not None
            conn = self._checkpoint_conn = self.driver.connect(str(self.path), isolation_level=None)
        with contextlib.suppress(self.driver.Error):
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= _RESTART_FRAMES:
                self._restart_wanted = True

    def _with_retry(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread, retried while another process holds the
        write lock (2 ms doubling to 100 ms, for ``write_retry_s``); then its error."""

        def busy(exc: BaseException) -> bool:
            return isinstance(exc, self.driver.OperationalError) and _is_busy(exc)

        def roll_back(_: RetryCallState) -> None:
            if args:
                _rollback(args[0])

        retrying = Retrying(
            retry=retry_if_exception(busy),
            wait=wait_exponential(multiplier=0.002, max=0.1),
            stop=stop_after_delay(self.write_retry_s),
            before_sleep=roll_back,
            reraise=True,
        )
        return retrying(fn, *args)

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


#: Rows changed between two background WAL checkpoints (a few thousand WAL frames).
_CHECKPOINT_CHANGES = 250

#: WAL frames (pages) above which a checkpoint also starts the WAL over. Measured
#: with ``benchmarks/loop.py --store sqlite``: at 16,384 a restart stalled the calls
#: behind it for tens of milliseconds; at 1,024 restarts were frequent enough to
#: show in p99 (3 ms); 4,096 (a 16 MB WAL) shows in neither.
_RESTART_FRAMES = 4096

#: The WAL file's size when it starts over (larger files are cut back to it).
_WAL_SIZE_LIMIT = 32 * 1024 * 1024


def _rollback(conn: Any) -> None:
    """End a transaction left open by a failed call (e.g. a ``COMMIT`` that found
    the file locked), so the call can run again."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _restart_wal(conn: Any) -> None:
    """A RESTART checkpoint, waiting at most 50 ms for other processes' writers and
    readers: calls queue behind it. The next write starts the WAL over, reusing
    its file (cut back to :data:`_WAL_SIZE_LIMIT` if larger); cutting it to zero
    bytes (TRUNCATE) made the following writes grow the file again, ~10% slower.
    """
    conn.execute("PRAGMA busy_timeout = 50")
    with contextlib.suppress(Exception):  # best effort; never retried in a loop here
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()


def _optimize(conn: Any) -> None:
    conn.execute("PRAGMA optimize")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
