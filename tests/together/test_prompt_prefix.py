"""Prompts built for prefix caches (``carrier.layout``): over 60 turns in one room, with
bootstrap's providers on, every request a backend sends begins with the whole stable
prefix of the one before it in that room — except where the history window drops
its older half, a few documented times — for the local, OpenAI and Anthropic backends.
Two users talk, each in their own direct room, turns interleaved."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from carrier_plugin_bootstrap import plugin as bootstrap
from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.settings import LocalSettings
from carrier_plugin_sql.store import SqlStore

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.layout import HistoryWindow, shorten_answer
from carrier.protocols import Model
from carrier.testing import EventRecorder, FakeModel
from carrier.testing.http_fake import FakeServer, Recorded, Reply
from carrier.types import EventType

TURNS = 60
LIMIT = 32  # CARRIER_HISTORY_LIMIT's default
#: At most one drop per LIMIT // 4 turns (a dropped window refills by 2 messages a turn).
MAX_DROPS = TURNS // (LIMIT // 4) + 1

CHARACTER = Character(
    name="Testy",
    system="You are Testy, a patient assistant.",
    bio=["Testy helps with small questions."],
    message_examples=[
        [
            {"name": "{{user1}}", "content": {"text": "Hi Testy!"}},
            {"name": "Testy", "content": {"text": "Hello {{user1}}, what can I do?"}},
        ]
    ],
)

USERS = ("ada", "bob")


def _said(user: str, turn: int) -> IncomingMessage:
    return IncomingMessage(
        text=f"Message {turn} from {user}: my favourite number today is {turn * 7}.",
        user_id=user,
        user_name=user.title(),
        room_id=f"dm-{user}",
    )


async def converse(tmp_path: Path, large: Model, *, turns: int = TURNS) -> EventRecorder:
    """``turns`` messages from each user in their direct room, interleaved."""
    host = PluginHost(autoload=False)
    host.register(bootstrap, name="bootstrap")
    events = EventRecorder()
    host.register(events, name="events")
    small = FakeModel(name="small", default_text='{"facts": [], "completed": [], "summary": ""}')
    embedder = FakeModel(name="embedder", embedding_dimension=64)
    async with (
        SqlStore(f"sqlite:///{tmp_path}/prefix.db") as store,
        AgentRuntime(
            CHARACTER,
            host=host,
            store=store,
            models={"large": large, "small": small, "embedding": embedder},
        ) as runtime,
    ):
        for turn, user in itertools.product(range(turns), USERS):
            reply = await runtime.handle(_said(user, turn))
            await reply.evaluated()
    return events


def check_prefixes(requests: list[tuple[Any, list[Any]]]) -> int:
    """Each request (system, messages) begins with the previous one's stable prefix
    (its system and all but its last message), or the window dropped a block: then the
    new history is a newer part of the old one plus the last exchange. The drops."""
    drops = 0
    for (system, before), (system_after, after) in itertools.pairwise(requests):
        assert system_after == system
        stable = before[:-1]
        if after[: len(stable)] == stable:
            assert len(after) == len(stable) + 3  # + the last message, the reply, the new one
            continue
        drops += 1
        history = after[:-1]
        # a window opens with a user's turn, never an answer whose question it dropped
        assert _role(history[0]) == "user"
        assert len(history) < len(stable)
        kept = history[:-2]  # the exchange answered last is not in the previous request
        assert kept == stable[len(stable) - len(kept) :], "a drop keeps the newest messages"
    assert 1 <= drops <= MAX_DROPS
    return drops


def _role(message: Any) -> str:
    """A message's role, whichever way a backend's requests spell messages."""
    if isinstance(message, tuple):  # (role, text)
        return str(message[0])
    return str(message["role"] if isinstance(message, dict) else message.role)


def by_room(requests: list[Any]) -> dict[str, list[Any]]:
    """The requests of each user's room: the turns alternate Ada's, Bob's."""
    return {user: requests[index :: len(USERS)] for index, user in enumerate(USERS)}


def test_the_window_drops_its_older_half_only_when_full() -> None:
    window = HistoryWindow(limit=8)
    ids = [f"m{n}" for n in range(7)]
    costs = [10] * 7
    assert window.start("r", ids[:3], costs[:3], 1000) == 0
    assert window.start("r", ids[:5], costs[:5], 1000) == 0  # grows, same start
    assert window.start("r", ids[2:], costs[2:], 1000) == 2  # m0 fell out: the newer half
    assert window.drops == 1
    assert window.start("r", ids[2:], costs[2:], 25) == 3  # over budget: half again
    assert window.start("other", ids, costs, 1000) == 3  # full, never seen: half
    assert window.drops == 3


def test_a_dropped_window_opens_at_a_message_that_is_not_the_agents() -> None:
    window = HistoryWindow(limit=8)
    ids = [f"m{n}" for n in range(7)]  # m0 Ada, m1 the agent, m2 Ada, ...
    openers = [n % 2 == 0 for n in range(7)]
    assert window.start("ada", ids, [10] * 7, 1000, openers) == 4  # half: m3, an answer
    assert window.start("ada", ids, [10] * 7, 25, openers) == 6  # over budget, then half
    # a group: Ada and Bob speak in turn between the agent's answers
    group = [True, True, False, True, True, False, True]
    assert window.start("room", ids, [10] * 7, 1000, group) == 3  # half is m3, Bob's
    assert window.start("bob", ids, [10] * 7, 1000, [False] * 7) == 3  # none opens: half


def test_a_small_model_gets_earlier_answers_back_shortened() -> None:
    # no marker of the cut: a small model copies it into its answers
    assert shorten_answer("Hello Ada! How can I help you today?") == "Hello Ada!"
    assert shorten_answer("Fine.") == "Fine."
    long = "word " * 60
    assert len(shorten_answer(long)) <= 160
    assert shorten_answer(long).endswith("word")
    assert shorten_answer("x" * 200) == "x" * 160  # no space to cut at


async def test_scripted_model_requests_share_their_prefix(tmp_path: Path) -> None:
    model = FakeModel(default_text="Noted.")
    events = await converse(tmp_path, model)
    requests = [r for r in model.requests if r.metadata.get("room_id")]
    assert len(requests) == TURNS * len(USERS)
    for user, room in by_room(requests).items():
        assert {r.metadata["room_id"] for r in room} == {f"dm-{user}"}
        check_prefixes([(r.system, r.messages) for r in room])
        last = room[-1].messages[-1].content
        assert "The current date and time is" in last  # per-message sections: after the history
        assert "Message 59 from" in last.rsplit("\n\n", 1)[-1]
        assert "{{user1}}" not in (room[-1].system or "")
        assert "User: Hi Testy!" in (room[-1].system or "")
        assert "id ada" not in last
        assert "id bob" not in last
    composed = events.of(EventType.CONTEXT_COMPOSED)
    assert len(composed) == TURNS * len(USERS)


async def test_the_local_backend_renders_the_same_prefix(tmp_path: Path) -> None:
    """What the local model's engine receives (its own chat-template messages, fitted to
    its context) keeps the prefix: llama.cpp's slot reuses it (``cache_prompt``)."""
    model = FakeModel(default_text="Noted.")
    await converse(tmp_path, model)
    local = LocalModel(LocalSettings(_env_file=None))
    requests = [r for r in model.requests if r.metadata.get("room_id")]
    for room in by_room(requests).values():
        prompts = [local.prepare(r)[0] for r in room]
        assert all(p.dropped == 0 for p in prompts)  # the kernel's window fitted them
        check_prefixes([(p.messages[0], p.messages[1:]) for p in prompts])


async def test_openai_requests_share_their_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carrier_plugin_openai import plugin as openai_plugin

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CARRIER_OPENAI_API_KEY", raising=False)

    def answer(request: Recorded) -> Reply:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "qwen2.5",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Noted."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102},
        }
        return Reply(json=body)

    host = PluginHost(autoload=False)
    host.register(openai_plugin, name="openai")
    async with FakeServer(answer) as server:
        # an Ollama / LM Studio / llama-server style endpoint: no key
        large = host.models.create("openai", base_url=server.url, model="qwen2.5")
        try:
            await converse(tmp_path, large)
        finally:
            await large.aclose()
    bodies = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == TURNS * len(USERS)
    for room in by_room(bodies).values():
        check_prefixes([(b["messages"][0], b["messages"][1:]) for b in room])


def _text(content: str | list[dict[str, Any]]) -> str:
    """A turn's text, cache breakpoints aside (they move forward each turn)."""
    if isinstance(content, str):
        return content
    return "\n\n".join(block["text"] for block in content)


async def test_anthropic_requests_share_their_prefix_and_mark_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carrier_plugin_anthropic import plugin as anthropic_plugin

    monkeypatch.setenv("CARRIER_ANTHROPIC_API_KEY", "sk-ant-api03-test-key-0123456789abcdef")
    requests: list[dict[str, Any]] = []

    def answer(request: Recorded) -> Reply:
        body = request.json
        requests.append(body)
        cached = sum(len(json.dumps(m)) for m in body["messages"][:-1]) if len(requests) > 2 else 0
        return Reply(
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "Noted."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 20,
                    "output_tokens": 2,
                    "cache_read_input_tokens": cached,
                    "cache_creation_input_tokens": 50,
                },
            }
        )

    host = PluginHost(autoload=False)
    host.register(anthropic_plugin, name="anthropic")
    async with FakeServer(answer) as server:
        large = host.models.create("anthropic", base_url=server.url)
        try:
            events = await converse(tmp_path, large)
        finally:
            await large.aclose()
    assert len(requests) == TURNS * len(USERS)
    for room in by_room(requests).values():
        for body in room:
            assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
            if len(body["messages"]) > 1:  # the breakpoint ends the stable prefix
                assert body["messages"][-2]["content"][-1]["cache_control"] == {"type": "ephemeral"}
                assert isinstance(body["messages"][-1]["content"], str)
        check_prefixes(
            [
                (_text(b["system"]), [(m["role"], _text(m["content"])) for m in b["messages"]])
                for b in room
            ]
        )
    used = events.of(EventType.MODEL_USED)
    assert any((e.data.get("cache_read_input_tokens") or 0) > 0 for e in used)


async def test_the_real_local_model_reuses_the_prefix_from_the_second_turn(
    tmp_path: Path,
) -> None:
    """One running runtime, the shipped model: llama.cpp reports the prompt tokens it
    took from its cache (``cache_read_input_tokens``) from the second turn on."""
    local = LocalModel(LocalSettings(_env_file=None, seed=0, context_size=2048, max_tokens=24))
    try:
        events = await converse(tmp_path, local, turns=2)
    finally:
        local.chat.close()
        local.embedder.close()
    used = [e for e in events.of(EventType.MODEL_USED) if e.data.get("model_class") == "large"]
    assert len(used) == 2 * len(USERS)
    second_turns = used[len(USERS) :]
    assert all((e.data.get("cache_read_input_tokens") or 0) > 20 for e in second_turns), [
        (e.data.get("input_tokens"), e.data.get("cache_read_input_tokens")) for e in used
    ]
