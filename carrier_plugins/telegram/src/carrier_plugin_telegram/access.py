"""Who may use the bot: the poller lock, direct-message pairing, group admins.

All durable state lives in the agent's store through ``PluginState`` (atomic, shared by
every process serving the agent): pairing codes and approvals per agent, and the poller
lock per bot token (in a namespace shared by all agents, since two agents configured
with one token would poll the same updates).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from carrier.plugin_state import PluginState

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore

__all__ = ["PairingBook", "PollerLock"]

#: Letters and digits without look-alikes (0/O, 1/I/L).
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
PAIRING_TTL_S = 3600.0


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


class PairingBook:
    """One-time codes for unknown direct-message users, and the users owners approved."""

    def __init__(self, state: PluginState) -> None:
        self._state = state

    async def approved(self, telegram_user_id: int) -> bool:
        return await self._state.get(f"approved:{telegram_user_id}") is not None

    async def request(self, telegram_user_id: int, name: str) -> str | None:
        """A new code for this user, or ``None`` if one is still waiting (so the user is
        told the code once, not on every message)."""
        waiting = await self._state.get(f"pairing-user:{telegram_user_id}")
        if waiting and await self._state.get(f"pairing:{waiting}") is not None:
            return None
        for _ in range(5):
            code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
            entry = {"user_id": telegram_user_id, "name": name, "at": time.time()}
            if await self._state.add(f"pairing:{code}", entry, ttl_s=PAIRING_TTL_S):
                await self._state.set(f"pairing-user:{telegram_user_id}", code, ttl_s=PAIRING_TTL_S)
                return code
        raise RuntimeError("could not draw an unused pairing code")  # pragma: no cover

    async def approve(self, code: str) -> dict[str, Any] | None:
        """Approve the user who was given ``code``; their entry, or ``None`` if the code is
        unknown or expired. A code works once."""
        key = f"pairing:{code.strip().upper()}"
        entry = await self._state.get(key)
        if not isinstance(entry, dict) or not await self._state.compare_and_set(key, entry, None):
            return None
        user = int(entry["user_id"])
        await self._state.set(f"approved:{user}", {"name": entry.get("name"), "at": time.time()})
        await self._state.delete(f"pairing-user:{user}")
        return entry

    async def waiting(self) -> list[tuple[str, dict[str, Any]]]:
        """Codes not approved yet: ``(code, entry)``."""
        return [
            (key.removeprefix("pairing:"), value)
            for key, value in await self._state.items("pairing:")
            if isinstance(value, dict)
        ]
