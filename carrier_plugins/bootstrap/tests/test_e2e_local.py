"""End to end: the default character (Nova) on the real local model (SmolLM2 +
MiniLM, carrier-plugin-local) and SQLite, for a few turns, with every bootstrap
action, provider and evaluator in the loop. Small ``max_tokens``: 2 shared cores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings
from carrier_plugin_sql.store import SqlStore

from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import EventRecorder
from carrier.types import EventType, IncomingMessage, MemoryType, Role

pytestmark = pytest.mark.slow


@pytest.fixture
async def nova(bootstrap_host: PluginHost, tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    model = build_model(
        LocalSettings(_env_file=None, context_size=4096, max_tokens=40, seed=0, temperature=0.2)
    )
    async with SqlStore(f"sqlite:///{tmp_path}/nova.db") as store:
        runtime = AgentRuntime(  # None: the default character
            None,
            host=bootstrap_host,
            store=store,
            models={"large": model, "small": model, "embedding": model},
        )
        async with runtime:
            yield runtime


async def test_nova_talks_for_a_few_turns(nova: AgentRuntime, events: EventRecorder) -> None:
    assert nova.character.name == "Nova"
    turns = ["Hi! My name is Ada and I live in Oslo.", "What is your name?", "Where do I live?"]
    replies = []
    for text in turns:
        reply = await nova.handle(
            IncomingMessage(
                text=text, user_id="ada", user_name="Ada", room_id="e2e", role=Role.OWNER
            )
        )
        assert reply.error is None, reply.error
        replies.append(reply)
    assert any(reply.texts for reply in replies)
    assert all(isinstance(t, str) for reply in replies for t in reply.texts)
    stored = await nova.store.get_memories(
        agent_id=nova.agent_id, room_id="e2e", type=MemoryType.MESSAGE
    )
    assert len([m for m in stored if m.entity_id == "ada"]) == 3
    assert all(m.embedding is not None for m in stored if m.entity_id == "ada")
    assert not events.of(EventType.PROVIDER_FAILED)
    assert not events.of(EventType.RUN_FAILED)
    # the facts evaluator ran on the first message (what it extracts is up to a 135M model)
    facts = [r for r in await replies[0].evaluated() if r.name == "facts"]
    assert len(facts) == 1
    if any("Oslo" in fact for fact in facts[0].data.get("added", [])):
        # a fact the model extracted is found again for the later question
        question = replies[2].message
        assert question.embedding is not None
        hits = await nova.store.search_memories(
            agent_id=nova.agent_id, embedding=question.embedding, type=MemoryType.FACT, limit=3
        )
        assert any("Oslo" in hit.memory.content.text for hit in hits)
