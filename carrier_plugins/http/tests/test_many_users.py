"""Many users, one agent, over real HTTP with per-user tokens, a real SQLite file and the
bootstrap plugin's fact evaluator: what one user says never reaches another's prompt,
a direct fact follows its subject to their other direct rooms, and a group fact never
leaves its group (docs/scope.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import carrier_plugin_bootstrap.plugin
import httpx
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.server import running_server
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FunctionModel, prompt_text
from carrier.types import MemoryType, ModelRequest, ModelResponse

TOKENS = {"tok-alice": "alice", "tok-bob": {"user": "bob", "role": "member"}}

#: What the scripted small model extracts, by a phrase of the message.
CLAIMS = {
    "bank PIN is 4321": "Bob's bank PIN is 4321.",
    "allergic to peanuts": "Alice is allergic to peanuts.",
}


def scripted(request: ModelRequest) -> ModelResponse:
    """Facts for the fact evaluator, an empty JSON answer for the others, else "ok"."""
    if request.response_schema is None:
        return ModelResponse(text="ok")
    said = request.messages[-1].content if request.messages else ""
    facts = [claim for phrase, claim in CLAIMS.items() if phrase in said]
    return ModelResponse(text=json.dumps({"facts": facts, "completed": [], "summary": "A chat."}))


@asynccontextmanager
async def served(
    host: PluginHost, settings_with, tmp_path: Path
) -> AsyncIterator[tuple[str, AgentRuntime, FunctionModel]]:
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")
    model = FunctionModel(scripted, embedding_dimension=128)
    settings = settings_with(user_tokens=TOKENS)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqlStore(f"sqlite:///{tmp_path}/many.db"))
        runtime = await stack.enter_async_context(
            AgentRuntime(
                Character(name="Testy"),
                host=host,
                store=store,
                models={"large": model, "small": model, "embedding": model},
            )
        )
        app = create_app(AgentHub([runtime], host=host), settings)
        url = await stack.enter_async_context(running_server(app))
        yield url, runtime, model


async def _say(
    client: httpx.AsyncClient, model: FunctionModel, text: str, room: str | None, **form: str
) -> str:
    """Post a message; the system prompt the large model got for it."""
    data = {"text": text, **form}
    if room is not None:
        data["roomId"] = room
    asked = len(model.requests)
    sent = await client.post("/Testy/message", data=data)
    assert sent.status_code == 200, sent.text
    large = [r for r in model.requests[asked:] if r.response_schema is None and r.actions]
    assert large, "the agent did not answer"
    return prompt_text(large[0])


async def _facts(runtime: AgentRuntime, count: int) -> list[str]:
    """The stored facts, once ``count`` exist (the evaluators run after the reply)."""
    for _ in range(200):
        facts = await runtime.store.get_memories(agent_id=runtime.agent_id, type=MemoryType.FACT)
        if len(facts) >= count:
            return [f.content.text for f in facts]
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} facts")


async def test_facts_reach_only_their_scope_over_http(host, settings_with, tmp_path) -> None:
    async with served(host, settings_with, tmp_path) as (url, runtime, model):
        headers = {"alice": "tok-alice", "bob": "tok-bob"}
        clients = {
            user: httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            for user, token in headers.items()
        }
        async with clients["alice"] as alice, clients["bob"] as bob:
            await _say(bob, model, "My bank PIN is 4321", "bob-dm-1")
            assert await _facts(runtime, 1) == ["Bob's bank PIN is 4321."]

            # Alice, in her own default room, asking about it: neither the fact nor
            # Bob's words reach her prompt
            system = await _say(alice, model, "What is Bob's bank PIN is 4321?", None)
            assert "4321" not in system.replace("What is Bob's bank PIN is 4321?", "")

            # Bob, in another direct room of his: his fact is there, as data
            system = await _say(bob, model, "what is my bank PIN?", "bob-dm-2")
            assert "- Bob's bank PIN is 4321." in system
            data = system[system.index("<data") :]
            assert "4321" in data
            assert "4321" not in system[: system.index("<data")]

            # a group fact stays in its group
            await _say(alice, model, "Testy, I am allergic to peanuts", "team", roomType="group")
            facts = await _facts(runtime, 2)
            assert "Alice is allergic to peanuts." in facts
            system = await _say(alice, model, "what am I allergic to? peanuts?", None)
            assert "Alice is allergic to peanuts" not in system
            system = await _say(
                bob, model, "Testy, who is allergic to peanuts?", "team", roomType="group"
            )
            assert "- Alice is allergic to peanuts." in system
            assert "4321" not in system  # and Bob's DM fact never enters the group

            # history holds messages only, even after facts were stored in the room
            sent = model.requests[-1]
            assert all(m.content != "Bob's bank PIN is 4321." for m in sent.messages)
