"""``Lanes``: a chat client's work queue — one key's items in order, keys concurrently.

A chat platform delivers events for many chats at once; each chat's must be handled in
the order they came (a reply to the second message must not overtake the first), while
different chats run side by side. Submit each item under its chat's key; a key's task
ends when its queue is empty, so idle chats cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Lanes"]

logger = logging.getLogger("carrier.services")


class Lanes:
    """Runs ``work(item)`` for each submitted item: one key's items in order, keys
    concurrently.

    Args:
        work: What to do with an item; an exception is logged and the lane goes on.
        label: Names the client in log lines (``"Telegram"``).
    """

    def __init__(self, work: Callable[[Any], Awaitable[None]], *, label: str = "client") -> None:
        self._work = work
        self._label = label
        self._queues: dict[str, deque[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: str, item: Any) -> None:
        """Queue ``item`` behind the other items of ``key``."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            task = asyncio.get_running_loop().create_task(self._run(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append(item)

    async def _run(self, key: str, queue: deque[Any]) -> None:
        try:
            while queue:
                try:
                    await self._work(queue.popleft())
                except Exception:
                    logger.exception("%s: handling an event failed", self._label)
        finally:
            del self._queues[key]

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the work in flight, then cancel what is left
        (a client's journal keeps it for the next start)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            logger.warning(
                "%s: %d chat(s) still busy at shutdown; left for recovery", self._label, len(late)
            )
            await asyncio.wait(late)
