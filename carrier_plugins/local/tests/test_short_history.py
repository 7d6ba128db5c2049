"""The default agent on the real model, two users: its earlier answers come back
shortened (a small model gets a small prompt), and no answer copies how they were
shortened (an ellipsis marker on them made the 135M model end 25 answers in 45 with
"…", or start them with it)."""

from __future__ import annotations

import carrier_plugin_local.plugin

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.runtime import DEFAULT_CHARACTER
from carrier.testing import EventRecorder
from carrier.types import EventType, ModelRequest

QUESTIONS = [
    "What do you like to do?",
    "Tell me about the sea.",
    "Do you know any jokes?",
    "What is your favourite colour?",
    "Can you help me cook pasta?",
    "Which book should I read?",
    "Tell me about dogs.",
    "What music do you like?",
]


async def test_answers_do_not_copy_the_shortened_history(
    host: PluginHost, events: EventRecorder
) -> None:
    host.register(carrier_plugin_local.plugin, name="local")
    answers: dict[str, list[str]] = {"ada": [], "bob": []}
    runtime = AgentRuntime(
        DEFAULT_CHARACTER,
        host=host,
        store=InMemoryStore(),
        models={"large": "local", "embedding": None},
    )
    async with runtime:
        for question in QUESTIONS:
            for user in answers:  # two users, each in their own room
                reply = await runtime.handle(
                    IncomingMessage(text=question, user_id=user, room_id=f"dm-{user}")
                )
                assert reply.error is None
                answers[user].append(" ".join(reply.texts))
    said = [a for user in answers.values() for a in user]
    marked = [a for a in said if "…" in a]
    assert len(marked) <= 1, marked
    # the history did come back shortened, and each room's holds only its own answers
    for user, other in (("ada", "bob"), ("bob", "ada")):
        last = [
            e.data["request"]
            for e in events.of(EventType.MODEL_USED)
            if e.room_id == f"dm-{user}" and e.data["model_class"] == "large"
        ][-1]
        assert isinstance(last, ModelRequest)
        earlier = [m.content for m in last.messages if m.role == "assistant"]
        assert len(earlier) == len(QUESTIONS) - 1
        assert all(e in a for e, a in zip(earlier, answers[user], strict=False))
        assert any(e != a for e, a in zip(earlier, answers[user], strict=False))
        assert not set(earlier).intersection(answers[other]) - set(answers[user])
