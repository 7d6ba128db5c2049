"""``InProcessExecutor``: the default way a message runs, in this process.

Messages of one room run one at a time, in arrival order; rooms run concurrently.
A room's lock is dropped as soon as nobody waits on it, so memory does not grow
with the number of rooms ever seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from carrier.protocols import Executor

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage, Reply

__all__ = ["InProcessExecutor"]

logger = logging.getLogger("carrier.executor")


class _RoomLane:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class InProcessExecutor(Executor):
    """Runs ``runtime.answer`` with one FIFO lane per (agent, room); the caller gets the
    reply as soon as it is stored, while the lane stays held until ``runtime.finish``
    (the evaluators) is done, so the room's next message sees what they stored."""

    name = "inprocess"

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], _RoomLane] = {}
        self._finishing: set[asyncio.Task[None]] = set()

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
            await lane.lock.acquire()  # asyncio.Lock wakes waiters in FIFO order
        except BaseException:
            self._leave(key, lane, locked=False)
            raise
        try:
            reply = await runtime.answer(incoming, on_text=on_text)
        except BaseException:
            self._leave(key, lane)
            raise
        if not reply.finishing:
            self._leave(key, lane)
            return reply
        task = asyncio.get_running_loop().create_task(self._finish(runtime, reply, key, lane))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return reply

    async def _finish(
        self, runtime: AgentRuntime, reply: Reply, key: tuple[str, str], lane: _RoomLane
    ) -> None:
        try:
            await runtime.finish(reply)
        except Exception:
            logger.exception("Evaluating message %s failed", reply.message.id)
        finally:
            self._leave(key, lane)

    def _leave(self, key: tuple[str, str], lane: _RoomLane, *, locked: bool = True) -> None:
        if locked:
            lane.lock.release()
        lane.users -= 1
        if lane.users == 0:
            del self._lanes[key]

    async def aclose(self) -> None:
        """Wait for the evaluators still running."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
