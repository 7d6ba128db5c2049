"""``PairingBook``: one-time codes that let an owner approve a direct-message user.

Clients whose direct messages follow the ``pairing`` policy (Telegram, Discord) give an
unknown user a code once; an owner approves it with ``carrier <client> approve CODE``.
Everything lives in the client's :class:`~carrier.plugin_state.PluginState` (atomic,
shared by every process serving the agent), keyed by the platform's user id.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrier.plugin_state import PluginState

__all__ = ["PAIRING_TTL_S", "PairingBook"]

#: Letters and digits without look-alikes (0/O, 1/I/L).
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
#: How long a code waits for an owner's approval.
PAIRING_TTL_S = 3600.0


class PairingBook:
    """One-time codes for unknown direct-message users, and the users owners approved.

    Args:
        state: The client's plugin state for the agent (``runtime.plugin_state(name)``).
    """

    def __init__(self, state: PluginState) -> None:
        self._state = state

    async def approved(self, user_id: int | str) -> bool:
        """Whether an owner approved ``user_id``."""
        return await self._state.get(f"approved:{user_id}") is not None

    async def request(self, user_id: int | str, name: str) -> str | None:
        """A new code for this user, or ``None`` if one is still waiting (so the user is
        told the code once, not on every message)."""
        waiting = await self._state.get(f"pairing-user:{user_id}")
        if waiting and await self._state.get(f"pairing:{waiting}") is not None:
            return None
        for _ in range(5):
            code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
            entry = {"user_id": user_id, "name": name, "at": time.time()}
            if await self._state.add(f"pairing:{code}", entry, ttl_s=PAIRING_TTL_S):
                await self._state.set(f"pairing-user:{user_id}", code, ttl_s=PAIRING_TTL_S)
                return code
        raise RuntimeError("could not draw an unused pairing code")  # pragma: no cover

    async def approve(self, code: str) -> dict[str, Any] | None:
        """Approve the user who was given ``code``; their entry, or ``None`` if the code is
        unknown or expired. A code works once."""
        key = f"pairing:{code.strip().upper()}"
        entry = await self._state.get(key)
        if not isinstance(entry, dict) or not await self._state.compare_and_set(key, entry, None):
            return None
        user = entry["user_id"]
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
