"""Who may use the bot: the poller lock, direct-message pairing, group admins.

Pairing codes are the kernel's :class:`carrier.pairing.PairingBook` (shared with the
Discord client), re-exported here.

All durable state lives in the agent's store through ``PluginState`` (atomic, shared by
every process serving the agent): pairing codes and approvals per agent, and the poller
lock per bot token (in a namespace shared by all agents, since two agents configured
with one token would poll the same updates).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from carrier.pairing import PAIRING_TTL_S, PairingBook
from carrier.plugin_state import PluginState

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore

__all__ = ["PAIRING_TTL_S", "PairingBook", "PollerLock"]


class PollerLock:
    """A lease on ``getUpdates`` for one bot token, held by one process at a time.

    Args:
        store: The store every process serving the bot shares.
        token_key: The token's short hash (``TelegramSettings.token_key``).
        ttl_s: The lease; the holder renews it every third of it, and another process
            may take it this long after the holder died.
    """

    def __init__(self, store: MemoryStore, token_key: str, *, ttl_s: float) -> None:
        self._state = PluginState(store, "telegram", "bots")
        self.key = f"poller:{token_key}"
        self.ttl_s = ttl_s
        self.value: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
        }

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; whether this process holds it now."""
        return await self._state.add(self.key, self.value, ttl_s=self.ttl_s)

    async def holder(self) -> dict[str, Any] | None:
        """Who holds the lease (``pid``, ``host``, ``since``), or ``None``."""
        found = await self._state.get(self.key)
        return found if isinstance(found, dict) else None

    async def renew(self) -> bool:
        """Extend the lease; ``False`` if it was lost (it expired and another took it)."""
        return await self._state.compare_and_set(self.key, self.value, self.value, ttl_s=self.ttl_s)

    async def release(self) -> None:
        """Give the lease up (only if this process still holds it)."""
        await self._state.compare_and_set(self.key, self.value, None)


def describe(holder: dict[str, Any] | None) -> str:
    """``"pid 12 on host-a"`` for a lock holder."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
