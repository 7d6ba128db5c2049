"""``Outbox``: what a client is about to send, recorded in the store first.

A reply is stored before the client delivers it, but delivery itself can be cut off:
a crash after the first of three chunks, a platform that rate-limits for a minute. A
client therefore records each outgoing chunk before sending it (:meth:`Outbox.put`),
marks it sent right after (:meth:`Outbox.sent`), and on start sends what is still
pending, in order (:meth:`Outbox.pending`). A chunk is sent again only if the process
died between the platform accepting it and the mark: that one call is the accepted
at-least-once window of platforms without idempotency keys (Telegram's
``sendMessage``).

A client that may compute the same answer twice — a journaled update handled again
after a crash that came after its answer was recorded — puts it with a ``ref`` (the
message it answers) and asks :meth:`Outbox.recorded` first: an answer is recorded, and
so sent, once.

Items live in the store's cache (the atomic key-value primitive of every store), as
``outbox:{client}:{agent_id}:{sequence}``, the sequence taken with ``increment_cache``
so that items of every chat keep the order they were put in, across processes; a put
with a ``ref`` also leaves ``outbox-ref:{client}:{agent_id}:{ref}`` behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore

__all__ = ["Deliveries", "Delivery", "Outbox", "OutboxItem"]

logger = logging.getLogger("carrier.outbox")

#: Unsent items are kept this long (seconds), then dropped: a week-old answer is news to
#: nobody.
PENDING_TTL_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One chunk to deliver: its ``chat`` (the client's address) and ``body`` (what the
    client needs to send it: text, reply-to, thread, ...; JSON)."""

    key: str
    chat: str
    body: dict[str, Any]
    #: The ``ref`` it was put with (the message it answers), if any.
    ref: str | None = None


class Outbox:
    """One client's outgoing chunks for one agent.

    Args:
        store: The agent's store.
        client: The client's name (``"telegram"``).
        agent_id: The agent.
    """

    def __init__(self, store: MemoryStore, client: str, agent_id: str) -> None:
        self._store = store
        self._prefix = f"outbox:{client}:{agent_id}:"
        self._sequence = f"outbox-sequence:{client}:{agent_id}"
        self._refs = f"outbox-ref:{client}:{agent_id}:"

    async def put(
        self, chat: str, bodies: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> list[OutboxItem]:
        """Record ``bodies`` for ``chat``, in order, before any is sent; ``ref`` names
        what they answer, for :meth:`recorded`."""
        if not bodies:
            return []
        last = await self._store.increment_cache(self._sequence, len(bodies))
        items = []
        for number, body in enumerate(bodies, start=last - len(bodies) + 1):
            key = f"{self._prefix}{number:016d}"
            value = {"chat": chat, "body": body, **({"ref": ref} if ref is not None else {})}
            await self._store.set_cache(key, value, ttl_s=PENDING_TTL_S)
            items.append(OutboxItem(key=key, chat=chat, body=dict(body), ref=ref))
        if ref is not None:
            await self.remember(ref)
        return items

    async def remember(self, ref: str) -> None:
        """Note that the answer to ``ref`` is recorded (:meth:`put` does it)."""
        await self._store.set_cache(f"{self._refs}{ref}", True, ttl_s=PENDING_TTL_S)

    async def recorded(self, ref: str) -> bool:
        """Whether an answer to ``ref`` was put (sent or still pending): handling the
        message again must not put it a second time."""
        if await self._store.get_cache(f"{self._refs}{ref}") is not None:
            return True
        # put() died between its items and the note: they are still pending
        return any(item.ref == ref for item in await self.pending())

    async def sent(self, item: OutboxItem) -> None:
        """Mark ``item`` delivered (it is never sent again)."""
        await self._store.delete_cache(item.key)

    async def pending(self, *, limit: int = 1000) -> list[OutboxItem]:
        """Items put but not marked sent, oldest first."""
        found = await self._store.list_cache(self._prefix, limit=limit)
        return [
            OutboxItem(
                key=key,
                chat=str(value["chat"]),
                body=dict(value["body"]),
                ref=str(value["ref"]) if value.get("ref") is not None else None,
            )
            for key, value in found
            if isinstance(value, dict) and "chat" in value and "body" in value
        ]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the agent sent to a client's room, to be delivered by that client."""

    key: str
    room_id: str
    memory_id: str


class Deliveries:
    """Messages the agent sent to rooms of one client (``runtime.send_message``, e.g.
    bootstrap's SEND_MESSAGE), waiting for the process that hosts the client.

    The kernel records one whenever ``send_message`` targets a room whose ``source``
    names an installed client — in whichever process runs the action (a ``carrier
    worker`` included). The process that serves the client reads them
    (:meth:`pending`), puts each into its :class:`Outbox` with the delivery's ``key``
    as ``ref`` (so a crash before :meth:`done` cannot send it twice), then marks it done.
    Keys: ``delivery:{client}:{agent_id}:{sequence}``.

    Args:
        store: The agent's store.
        client: The client's name, which is also its rooms' ``source``.
        agent_id: The agent.
    """

    def __init__(self, store: MemoryStore, client: str, agent_id: str) -> None:
        self._store = store
        self._client = client
        self._prefix = f"delivery:{client}:{agent_id}:"
        self._sequence = f"delivery-sequence:{client}:{agent_id}"

    async def add(self, room_id: str, memory_id: str) -> None:
        """Ask the client to deliver the stored message ``memory_id`` to ``room_id``."""
        number = await self._store.increment_cache(self._sequence)
        value = {"room_id": room_id, "memory_id": memory_id}
        await self._store.set_cache(f"{self._prefix}{number:016d}", value, ttl_s=PENDING_TTL_S)

    async def pending(self, *, limit: int = 1000) -> list[Delivery]:
        """Deliveries not yet done, oldest first."""
        found = await self._store.list_cache(self._prefix, limit=limit)
        return [
            Delivery(key=key, room_id=str(value["room_id"]), memory_id=str(value["memory_id"]))
            for key, value in found
            if isinstance(value, dict) and "room_id" in value and "memory_id" in value
        ]

    async def done(self, delivery: Delivery) -> None:
        """The delivery is in the client's outbox (or cannot be made): drop it."""
        await self._store.delete_cache(delivery.key)

    def serve(
        self, deliver: Callable[[], Awaitable[object]], wake: asyncio.Event, poll_s: float
    ) -> asyncio.Task[None]:
        """Run ``deliver`` (the client's: take :meth:`pending`, put each into its
        outbox, send) at once whenever ``wake`` is set, else every ``poll_s`` seconds,
        until the returned task is cancelled. A failure is logged and tried again at
        the next wake-up."""

        async def loop() -> None:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns the
                # result of a wait that ends as the task is cancelled, so a wake-up
                # racing the client's shutdown kept this loop (and its drain) going
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_s):
                        await wake.wait()
                wake.clear()
                try:
                    await deliver()
                except Exception:
                    logger.exception("%s: delivering sent messages failed; retrying", self._client)

        return asyncio.get_running_loop().create_task(loop())
