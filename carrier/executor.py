"""``InProcessExecutor``: the default way a message runs, in this process.

Messages of one room run one at a time, in arrival order; rooms run concurrently.
A room's lock is dropped as soon as nobody waits on it, so memory does not grow
with the number of rooms ever seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from carrier.protocols import Executor

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage, Reply

__all__ = ["InProcessExecutor"]


class _RoomLane:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class InProcessExecutor(Executor):
    """Runs ``runtime.handle_message`` with one FIFO lane per (agent, room)."""

    name = "inprocess"

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], _RoomLane] = {}

    @property
    def active_rooms(self) -> int:
        """Rooms with a message in flight or waiting."""
        return len(self._lanes)

    async def submit(
        self,
        runtime: AgentRuntime,
        incoming: IncomingMessage,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Reply:
        key = (runtime.agent_id, runtime.room_id_for(incoming))
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _RoomLane()
        lane.users += 1
        try:
            async with lane.lock:  # asyncio.Lock wakes waiters in FIFO order
                return await runtime.handle_message(incoming, on_text=on_text)
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[key]
