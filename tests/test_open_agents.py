"""``open_agents``: the runtimes ``carrier serve`` and ``carrier worker`` host."""

from __future__ import annotations

import pytest

from carrier.character import Character
from carrier.errors import ConfigurationError
from carrier.host import PluginHost
from carrier.runtime import open_agents
from carrier.types import IncomingMessage


async def test_agents_share_one_store_and_keep_their_own_rooms(host: PluginHost) -> None:
    async with open_agents(host, [Character(name="Ada"), Character(name="Bo")]) as (ada, bo):
        assert ada.store is bo.store
        await ada.handle(IncomingMessage(text="hi Ada", room_id="r"))
        assert await bo.store.count_memories(agent_id=bo.agent_id) == 0
        assert await ada.store.count_memories(agent_id=ada.agent_id) == 2


async def test_two_characters_with_one_id_are_refused(host: PluginHost) -> None:
    with pytest.raises(ConfigurationError, match="Two characters have the agent id"):
        async with open_agents(host, [Character(name="Ada"), Character(name="Ada")]):
            pass
