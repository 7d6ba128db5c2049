"""``runtime.plugin_state`` on both SQL backends: a counter kept by an action stays exact
while 50 rooms (50 users) talk to the agent at once, and a second agent sharing the
store keeps its own count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from carrier_plugin_sql.postgres import PostgresStore
from carrier_plugin_sql.store import SqlStore
from carrier_plugin_sql.testing import fresh_database
from pydantic import BaseModel

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.protocols import Action, MemoryStore
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FunctionModel
from carrier.types import ActionCall, ActionResult, Memory, ModelRequest, ModelResponse, State

ROOMS = 50
MESSAGES_PER_ROOM = 2


class CountAction(Action):
    name = "COUNT"
    description = "Counts the agent's visits."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        visits = runtime.plugin_state("counter")
        total = await visits.increment("visits")
        await visits.increment(f"visits:{message.entity_id}")
        await asyncio.sleep(0)  # let the other rooms' runs interleave
        return ActionResult(name=self.name, text=f"visit {total}")


class CounterPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        actions.add("COUNT", CountAction)


def counting(request: ModelRequest) -> ModelResponse:
    if request.metadata.get("step") == 0 and request.actions:
        return ModelResponse(text="", action_calls=[ActionCall(name="COUNT")])
    return ModelResponse(text="Counted.")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryStore]:
    if request.param == "sqlite":
        async with SqlStore(f"sqlite:///{tmp_path}/counter.db") as sqlite:
            yield sqlite
        return
    # the session's PostgreSQL server (conftest), a fresh database for this test
    async with (
        fresh_database(request.getfixturevalue("postgres_url")) as url,
        PostgresStore(url) as postgres,
    ):
        yield postgres


def agent(store: MemoryStore, name: str) -> AgentRuntime:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.register(CounterPlugin(), name="counter")
    model = FunctionModel(counting)
    return AgentRuntime(
        Character(name=name, bio=["Counts."]),
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )


async def test_a_counter_is_exact_under_50_concurrent_rooms(store: MemoryStore) -> None:
    async with agent(store, "Ada") as ada, agent(store, "Bob") as bob:

        async def room(index: int) -> list[str]:
            texts = []
            for turn in range(MESSAGES_PER_ROOM):
                reply = await ada.handle(
                    IncomingMessage(
                        text=f"count me ({turn})", user_id=f"user-{index}", room_id=f"room-{index}"
                    )
                )
                assert reply.error is None
                texts += [r.text for r in reply.action_results]
            return texts

        results = await asyncio.gather(*(room(i) for i in range(ROOMS)))
        await bob.handle(IncomingMessage(text="count me", user_id="user-0", room_id="bob-room"))

        visits = ada.plugin_state("counter")
        assert await visits.get("visits") == ROOMS * MESSAGES_PER_ROOM
        # every run saw a different total: no two increments returned the same value
        seen = sorted(int(text.split()[-1]) for texts in results for text in texts)
        assert seen == list(range(1, ROOMS * MESSAGES_PER_ROOM + 1))
        per_user = dict(await visits.items("visits:"))
        assert per_user == {f"visits:user-{i}": MESSAGES_PER_ROOM for i in range(ROOMS)}
        # the other agent on the same store counts apart
        assert await bob.plugin_state("counter").get("visits") == 1
