"""``carrier.pairing.PairingBook``: a code once per user, approved once, per agent."""

from __future__ import annotations

from carrier.builtin.memory_store import InMemoryStore
from carrier.pairing import PairingBook
from carrier.plugin_state import PluginState


async def test_a_code_is_given_once_and_approves_its_user_only() -> None:
    async with InMemoryStore() as store:
        book = PairingBook(PluginState(store, "chat", "agent-1"))
        other_agent = PairingBook(PluginState(store, "chat", "agent-2"))
        alice = await book.request(11, "alice")
        assert alice is not None
        assert await book.request(11, "alice") is None  # told once
        bob = await book.request(12, "bob")
        assert bob is not None
        assert bob != alice
        assert {code for code, _ in await book.waiting()} == {alice, bob}
        assert await other_agent.approve(alice) is None  # another agent's book
        entry = await book.approve(alice.lower())
        assert entry is not None
        assert entry["user_id"] == 11
        assert await book.approved(11)
        assert not await book.approved(12)
        assert not await other_agent.approved(11)
        assert await book.approve(alice) is None  # a code works once
        assert {code for code, _ in await book.waiting()} == {bob}
