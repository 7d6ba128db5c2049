"""``PluginState``: a plugin's own keys in the agent's store, with atomic operations.

A plugin keeps state that must survive restarts and be shared by every process
serving the agent (a counter, a last-seen id, a rate limit) in the store's cache,
the key-value primitive the kernel's leases use too (``MemoryStore.add_cache``,
``compare_and_set_cache``, ``increment_cache``). ``AgentRuntime.plugin_state`` hands
out one per namespace; its keys are stored as ``plugin:{namespace}:{agent_id}:{key}``,
so plugins and agents sharing a store never see each other's keys. Values are JSON
(dicts, lists, strings, numbers, booleans, ``None`` is "absent"); every operation is
one atomic store call, so concurrent rooms, processes and machines never lose an
update: use ``increment`` or ``compare_and_set``, never a read followed by a write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carrier.errors import InputError

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore

__all__ = ["PluginState"]


class PluginState:
    """One plugin namespace's keys for one agent (see the module docstring).

    Args:
        store: The agent's store.
        namespace: The plugin's namespace (its settings namespace, by convention).
        agent_id: The agent the keys belong to.
    """

    def __init__(self, store: MemoryStore, namespace: str, agent_id: str) -> None:
        if not namespace or ":" in namespace:
            raise InputError(
                f"Plugin state namespace {namespace!r} must be a non-empty name without ':'."
            )
        self._store = store
        self.namespace = namespace
        self.prefix = f"plugin:{namespace}:{agent_id}:"

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise InputError(f"Plugin state keys are non-empty strings, not {key!r}.")
        return self.prefix + key

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` if absent or expired."""
        found = await self._store.get_cache(self._key(key))
        return default if found is None else found

    async def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``, for ``ttl_s`` seconds (``None``: no expiry)."""
        await self._store.set_cache(self._key(key), value, ttl_s=ttl_s)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        return await self._store.delete_cache(self._key(key))

    async def add(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent (or expired); whether this call
        stored it. Of concurrent calls for one key, exactly one wins."""
        return await self._store.add_cache(self._key(key), value, ttl_s=ttl_s)

    async def compare_and_set(
        self, key: str, expected: Any, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        """Replace ``expected`` by ``value`` (``None`` deletes) atomically; ``False``
        and nothing changed if ``key`` holds anything else."""
        return await self._store.compare_and_set_cache(self._key(key), expected, value, ttl_s=ttl_s)

    async def increment(self, key: str, amount: int = 1, *, ttl_s: float | None = None) -> int:
        """Add ``amount`` to the integer under ``key`` (absent counts as 0) atomically;
        the new value. ``ttl_s`` applies when the key is created.

        Raises:
            StoreError: ``key`` holds something that is not an integer.
        """
        return await self._store.increment_cache(self._key(key), amount, ttl_s=ttl_s)

    async def items(self, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Any]]:
        """``(key, value)`` of the live keys starting with ``prefix``, in key order
        (keys without the namespace's own prefix)."""
        found = await self._store.list_cache(self.prefix + prefix, limit=limit)
        return [(key[len(self.prefix) :], value) for key, value in found]
