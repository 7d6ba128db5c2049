"""Exactly once (DESIGN §8): a message's run is leased, and its steps are recorded.

Both live in the store's cache, through its atomic operations, so they hold across
processes and machines sharing the store:

- ``run:{agent_id}:{message_id}`` — the **lease** of the process handling the message:
  ``{"owner": token, "host", "pid", "until": epoch}``, taken with ``add_cache`` (or,
  with ``compare_and_set_cache``, over a lease that expired or whose process on this
  machine is gone), renewed while the run lasts, deleted when the evaluators are done.
  It has no store expiry, so a crashed run leaves its entry:
  ``recover()`` lists them (``list_cache``) to finish what was cut off.
- ``step:{agent_id}:{message_id}:{step}`` — the model's response of a step that chose
  actions, recorded before they run, so a replay takes the same path;
- ``act:{agent_id}:{message_id}:{step}:{index}`` — a completed action call's
  ``ActionResult``. A replay reuses it and never runs the call again; a call without a
  record (interrupted) runs again with the same **idempotency key**
  ``"{message_id}:{step}:{index}"``, which its handler receives in
  ``state.idempotency_key`` and passes on to anything with external effects.

A fresh message's lease is added with the message itself, in one store call that also
reads the turn (``MemoryStore.create_memory_reading_turn``: one round trip on
PostgreSQL; a process that leased the message first keeps it), and deleted after its
evaluators: one more write; an agent without evaluators deletes it with the reply
(``release``), in the same write.
A step that chose actions costs one write before they run; each action call's outcome
one write when it completes, except the message's last call, whose outcome is written
with the reply (the next write anyway). So a message without
actions costs one write beyond its own (none without evaluators), one with one action
call two (one). Records are
pydantic's JSON strings (dicts written by earlier versions still replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from carrier.types import ActionResult, ModelResponse

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore
    from carrier.stores import TurnQuery, TurnReads
    from carrier.types import Memory

__all__ = ["Lease", "StepLog", "idempotency_key"]

logger = logging.getLogger("carrier.steps")

#: Recorded steps are kept this long (seconds): far beyond any recovery.
RECORD_TTL_S = 7 * 24 * 3600.0
_HOST = socket.gethostname()
_Record = TypeVar("_Record", ModelResponse, ActionResult)
#: Owners of the leases this process holds now.
_LIVE: set[str] = set()


def idempotency_key(message_id: str, step: int, index: int) -> str:
    """The key of one action call: stable across every replay of the message."""
    return f"{message_id}:{step}:{index}"


class Lease:
    """This process's claim on one message; renewed in the background until released."""

    def __init__(self, store: MemoryStore, key: str, ttl_s: float) -> None:
        self._store = store
        self.key = key
        self._ttl_s = ttl_s
        self._value: dict[str, Any] = {
            "owner": f"{_TOKEN_PREFIX[0]}{next(_TOKENS):x}",
            "host": _HOST,
            "pid": os.getpid(),
            "until": time.time() + ttl_s,
        }
        # Listed for its first renewal (most runs end before it), then a task renews it.
        self._renewals: _Renewals | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False
        self.released = False

    async def acquire_with(self, memory: Memory, turn: TurnQuery) -> tuple[bool, TurnReads | None]:
        """Store ``memory`` (a message), take the lease in the same write and read
        ``turn`` (``MemoryStore.create_memory_reading_turn``); ``False`` (no lease
        taken) if the memory was stored before: then :meth:`acquire` decides.
        Raises what ``create_memory`` raises."""
        owner = self._value["owner"]
        _LIVE.add(owner)  # live from the write on: a recovery here never takes it over
        try:
            created, reads = await self._store.create_memory_reading_turn(
                memory, {self.key: self._value}, turn
            )
        except BaseException:
            _LIVE.discard(owner)
            raise
        if not created:
            _LIVE.discard(owner)
            return False, None
        self._start_renewing()
        return True, reads

    async def acquire(self) -> bool:
        """Take the lease if it is free or expired; ``False`` if a live run holds it."""
        if await self._store.add_cache(self.key, self._value):
            self._start_renewing()
            return True
        current = await self._store.get_cache(self.key)
        if current is None:  # released between the two calls: try once more
            taken = await self._store.add_cache(self.key, self._value)
        elif _stale(current):
            taken = await self._store.compare_and_set_cache(self.key, current, self._value)
            if taken:
                logger.warning("Took over the lease %s of a run that ended: %s", self.key, current)
        else:
            taken = False
        if taken:
            self._start_renewing()
        return taken

    def _start_renewing(self) -> None:
        _LIVE.add(self._value["owner"])
        loop = asyncio.get_running_loop()
        renewals = _RENEWALS.get(loop)
        if renewals is None:
            renewals = _RENEWALS[loop] = _Renewals()
        self._renewals = renewals
        renewals.add(self, loop, self._ttl_s / 3)

    def renew_from_now(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start renewing in a task (its first renewal is due)."""
        self._renewer = loop.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            fresh = {**self._value, "until": time.time() + self._ttl_s}
            try:
                renewed = await self._store.compare_and_set_cache(self.key, self._value, fresh)
            except Exception:  # the store may come back before the lease runs out
                logger.warning("Could not renew the lease %s; retrying", self.key, exc_info=True)
                await asyncio.sleep(self._ttl_s / 3)
                continue
            if not renewed:
                self.lost = True
                logger.error(
                    "The lease %s was taken by another process while this one still ran "
                    "(stalled for over %.0f s?); its records decide what runs again.",
                    self.key,
                    self._ttl_s,
                )
                return
            self._value = fresh
            await asyncio.sleep(self._ttl_s / 3)

    async def _stop_renewing(self) -> None:
        if self._renewals is not None:
            self._renewals.discard(self)
            self._renewals = None
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def release(self) -> None:
        """Stop renewing and delete the lease (the message is finished); nothing if
        :meth:`release_with` released it."""
        if self.released:
            return
        await self._stop_renewing()
        try:
            if not self.lost:
                await self._store.compare_and_set_cache(self.key, self._value, None)
        finally:  # only now: until the entry is gone, it is a live run of this process
            _LIVE.discard(self._value["owner"])

    async def release_with(self, write: Callable[..., Awaitable[bool]]) -> bool:
        """Release the lease in the run's last write: stop renewing, then
        ``write(release=entries)`` (a store call that deletes ``entries`` only if it
        writes: ``create_memory_with_cache``). Returns what ``write`` returns;
        if that is ``False`` (nothing written, or not everything), :meth:`release` still
        deletes the entry, if it is there."""
        await self._stop_renewing()
        written = await write(release={} if self.lost else {self.key: self._value})
        if written:
            self.released = True
            _LIVE.discard(self._value["owner"])
        return written

    async def abandon(self) -> None:
        """Stop renewing but keep the entry: recovery finishes the run (at once in
        this process or on this machine, else after the lease expires)."""
        await self._stop_renewing()
        _LIVE.discard(self._value["owner"])


class _Renewals:
    """The leases one event loop holds, waiting for their first renewal, on one timer:
    most runs end long before a renewal is due, so a lease costs no timer (and no
    cancelled timer) of its own."""

    def __init__(self) -> None:
        self._due: dict[Lease, float] = {}  # lease -> loop time of its first renewal
        self._timer: asyncio.TimerHandle | None = None

    def add(self, lease: Lease, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self._due[lease] = loop.time() + delay_s
        if self._timer is None:
            self._timer = loop.call_later(delay_s, self._fire, loop)

    def discard(self, lease: Lease) -> None:
        self._due.pop(lease, None)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for lease, due in list(self._due.items()):
            if due <= now:
                del self._due[lease]
                lease.renew_from_now(loop)
        if self._due:
            self._timer = loop.call_at(min(self._due.values()), self._fire, loop)


#: Each running event loop's leases waiting for their first renewal.
_RENEWALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Renewals] = (
    weakref.WeakKeyDictionary()
)
#: Lease owners: a random prefix per process (new in a forked child) and a counter.
_TOKENS = itertools.count()
_TOKEN_PREFIX = [uuid.uuid4().hex[:16]]


def _new_token_prefix() -> None:
    _TOKEN_PREFIX[0] = uuid.uuid4().hex[:16]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_token_prefix)


def _stale(lease: Any) -> bool:
    """Whether a lease's run cannot be going on: it expired, or its process on this
    machine is gone (so a restart recovers at once instead of waiting for expiry)."""
    if not isinstance(lease, dict) or float(lease.get("until", 0)) <= time.time():
        return True
    if lease.get("host") != _HOST or not isinstance(lease.get("pid"), int):
        return False
    pid = lease["pid"]
    if pid == os.getpid():  # ours only while this process holds it
        return lease.get("owner") not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped yet (Linux; elsewhere ``False``)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


class StepLog:
    """The records of one agent's runs in ``store``."""

    def __init__(self, store: MemoryStore, agent_id: str, *, ttl_s: float) -> None:
        self._store = store
        self._agent_id = agent_id
        self._ttl_s = ttl_s

    def lease_key(self, message_id: str) -> str:
        return f"run:{self._agent_id}:{message_id}"

    def lease(self, message_id: str) -> Lease:
        """A lease on ``message_id`` (not taken yet: call ``acquire``)."""
        return Lease(self._store, self.lease_key(message_id), self._ttl_s)

    async def unfinished(self, *, limit: int) -> list[str]:
        """Ids of messages whose run was cut off: a lease left behind by a process that
        is gone, or expired."""
        prefix = f"run:{self._agent_id}:"
        return [
            key[len(prefix) :]
            for key, value in await self._store.list_cache(prefix, limit=limit)
            if _stale(value)
        ]

    async def in_progress(self, message_id: str) -> bool:
        """Whether a run of ``message_id`` is unfinished (live or cut off)."""
        return await self._store.get_cache(self.lease_key(message_id)) is not None

    async def response(self, message_id: str, step: int) -> ModelResponse | None:
        found = await self._store.get_cache(f"step:{self._agent_id}:{message_id}:{step}")
        return None if found is None else _load(ModelResponse, found)

    async def record_response(self, message_id: str, step: int, response: ModelResponse) -> None:
        await self._store.set_cache(
            f"step:{self._agent_id}:{message_id}:{step}",
            response.model_dump_json(),
            ttl_s=RECORD_TTL_S,
        )

    def outcome_key(self, message_id: str, step: int, index: int) -> str:
        return f"act:{self._agent_id}:{message_id}:{step}:{index}"

    async def outcome(self, message_id: str, step: int, index: int) -> ActionResult | None:
        found = await self._store.get_cache(self.outcome_key(message_id, step, index))
        return None if found is None else _load(ActionResult, found)

    async def record_outcome(
        self, message_id: str, step: int, index: int, result: ActionResult
    ) -> None:
        await self.record_outcomes([self.outcome_record(message_id, step, index, result)])

    def outcome_record(
        self, message_id: str, step: int, index: int, result: ActionResult
    ) -> tuple[str, str]:
        """The cache entry of a completed call: written now, or with the reply."""
        return self.outcome_key(message_id, step, index), result.model_dump_json()

    async def record_outcomes(self, records: list[tuple[str, str]]) -> None:
        for key, value in records:
            await self._store.set_cache(key, value, ttl_s=RECORD_TTL_S)


def _load(model: type[_Record], found: Any) -> _Record:
    """A record as stored: a JSON string (pydantic's own dump, several times faster than
    a dict encoded by the store), or the dict earlier versions stored."""
    if isinstance(found, str):
        return model.model_validate_json(found)
    return model.model_validate(found)
