"""llama.cpp reuses shifted chunks of its cache within one continuing conversation,
and never across rooms or over a message deleted from the middle of the history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import carrier_plugin_local.plugin
import pytest
from carrier_plugin_local.chat import _continues
from carrier_plugin_local.model import LocalModel

from carrier import AgentRuntime, Character, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.settings import CarrierSettings
from carrier.testing import EventRecorder
from carrier.types import ChatMessage, EventType, ModelRequest

from .conftest import NOVA


def turns(story: str) -> list[ChatMessage]:
    """Twelve turns of a conversation, each long enough to be a reusable chunk. Each
    test tells its own ``story``: llama.cpp also restores whole prompts it saw before
    (exact prefixes, which is sound), and that must not blur what a test measures."""
    return [
        ChatMessage(
            role="user" if n % 2 == 0 else "assistant",
            content=f"Turn {n}: the {story} counted {n * 7} ships passing the northern "
            f"cape before the storm of year {1900 + n} reached the harbour.",
        )
        for n in range(12)
    ]


IDS = [f"m{n}" for n in range(12)]


def request(
    room: str, history: list[ChatMessage], first: int, last: int, question: str
) -> ModelRequest:
    """Turns ``first``..``last - 1`` of ``history`` in ``room``, then ``question``."""
    return ModelRequest(
        system=NOVA,
        messages=[*history[first:last], ChatMessage(role="user", content=question)],
        max_tokens=2,
        temperature=0.0,
        metadata={"room_id": room, "history_ids": IDS[first:last]},
    )


def tokens_of(model: LocalModel, messages: list[ChatMessage]) -> int:
    """Tokens of ``messages`` after the persona, as the chat template renders them."""
    rendered = [{"role": "system", "content": NOVA}]
    rendered += [{"role": m.role, "content": m.content} for m in messages]
    return model.chat.count_prompt(rendered)


async def cached_after(model: LocalModel, before: ModelRequest, after: ModelRequest) -> int:
    """Tokens of ``after`` llama.cpp took from its cache, right after ``before`` ran."""
    await model.generate(before)
    response = await model.generate(after)
    assert response.usage.cache_read_input_tokens is not None
    return response.usage.cache_read_input_tokens


async def test_a_dropped_block_of_history_is_not_read_again(model: LocalModel) -> None:
    history = turns("lighthouse keeper")
    full = request("room-a", history, 0, 10, "What did the keeper count?")
    dropped = request("room-a", history, 4, 12, "And after the storm?")
    reused = await cached_after(model, full, dropped)
    # turns 4..11 after the persona, of which 4..9 were in the cache, shifted
    kept = tokens_of(model, history[4:10]) - tokens_of(model, [])
    assert reused >= tokens_of(model, []) + kept - 16, (reused, kept)


async def test_no_chunk_of_one_room_is_reused_in_another(model: LocalModel) -> None:
    history = turns("harbour master")
    ada = request("room-ada", history, 0, 10, "What did the master count?")
    # Bob's room holds Ada's turns 4..9 (as a copy would): reusing them would bring
    # what they attended to in Ada's room (turns 0..3) into Bob's answer
    bob = request("room-bob", history, 4, 10, "What did the master count?")
    across = await cached_after(model, ada, bob)
    assert across <= tokens_of(model, []) + 8, across
    # the same two requests in one room: the chunks are reused
    history = turns("ferry captain")
    ada = request("room-ada", history, 0, 10, "What did the captain count?")
    again = request("room-ada", history, 4, 10, "What did the captain count?")
    within = await cached_after(model, ada, again)
    assert within > across + 4 * model.count_tokens(history[4].content), (within, across)


async def test_no_chunk_after_a_deleted_message_is_reused(model: LocalModel) -> None:
    history = turns("coast guard")
    full = request("room-c", history, 0, 10, "What did the guard count?")
    # turn 2 deleted (carrier forget): turns 3..9 read it, so they are read again
    forgotten = full.model_copy(
        update={
            "messages": [*history[0:2], *history[3:10], full.messages[-1]],
            "metadata": {"room_id": "room-c", "history_ids": [*IDS[0:2], *IDS[3:10]]},
        }
    )
    cached = await cached_after(model, full, forgotten)
    before_deleted = tokens_of(model, history[0:2])
    assert cached <= before_deleted + 8, (cached, before_deleted)


@asynccontextmanager
async def short_window_agent(
    monkeypatch: pytest.MonkeyPatch, events: EventRecorder
) -> AsyncIterator[AgentRuntime]:
    """A running agent on the local model whose window of 8 messages drops its older
    half every few turns, short answers, its events to ``events``."""
    monkeypatch.setenv("CARRIER_LOCAL_MAX_TOKENS", "12")
    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None, history_limit=8))
    host.register(events, name="events")
    host.register(carrier_plugin_local.plugin, name="local")
    nova = Character(name="Nova", bio=["Nova is a small assistant built with Carrier."])
    models = {"large": "local", "embedding": None}
    async with AgentRuntime(nova, host=host, store=InMemoryStore(), models=models) as runtime:
        yield runtime


async def test_a_running_agent_reads_the_kept_history_from_the_cache_after_a_drop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = EventRecorder()
    async with short_window_agent(monkeypatch, events) as runtime:
        await runtime.warmed()
        for turn in range(8):
            text = f"Note {turn}: the ferry left pier {turn} at {turn + 6} o'clock with cargo."
            reply = await runtime.handle(IncomingMessage(text=text, user_id="ada", room_id="dm"))
            assert reply.error is None
        # Bob's room right after: nothing of Ada's room comes from the cache
        await runtime.handle(IncomingMessage(text=text, user_id="bob", room_id="dm-bob"))
        drops = runtime._window.drops
    used = [e.data for e in events.of(EventType.MODEL_USED) if e.data["model_class"] == "large"]
    assert drops >= 2
    # after the warm-up, every turn of Ada's re-read at most its own message and the
    # answer before it (about 40 tokens), drops included
    for data in used[1:8]:
        prompt, cached = data["input_tokens"], data["cache_read_input_tokens"]
        assert isinstance(prompt, int)
        assert isinstance(cached, int)
        assert prompt - cached <= 60, used
    bobs = used[8]
    assert bobs["input_tokens"] - bobs["cache_read_input_tokens"] > 20, bobs


@pytest.mark.parametrize(
    ("before", "after", "continues"),
    [
        (["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"], True),  # grew
        (["a", "b", "c", "d"], ["c", "d", "e", "f"], True),  # dropped its older half
        (["a", "b", "c", "d"], ["e", "f"], True),  # dropped all of it
        ([], ["a", "b"], True),
        (["a", "b", "c", "d"], ["a", "b", "d", "e", "f"], False),  # "c" deleted
        (["a", "b", "c", "d"], ["b", "d", "e"], False),  # "c" deleted, "a" dropped
        (["a", "b", "c", "d"], ["a", "c", "b", "d"], False),  # reordered
    ],
)
def test_a_history_continues_only_by_dropping_its_front(
    before: list[str], after: list[str], continues: bool
) -> None:
    assert _continues(before, after) is continues


async def test_after_the_next_prefix_is_prefilled_each_message_reads_only_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = EventRecorder()
    async with short_window_agent(monkeypatch, events) as runtime:
        await runtime.warmed()
        for turn in range(8):
            text = f"Note {turn}: the barge left dock {turn} at {turn + 6} o'clock with coal."
            reply = await runtime.handle(IncomingMessage(text=text, user_id="ada", room_id="dm"))
            assert reply.error is None
            await reply.evaluated()
            await runtime.warmed()  # the room's next prefix, prefilled: a user reading
        first = "Note 0: the barge left dock 0 at 6 o'clock with coal."  # Ada's first
        await runtime.handle(IncomingMessage(text=first, user_id="bob", room_id="dm-bob"))
        drops = runtime._window.drops
    used = [e.data for e in events.of(EventType.MODEL_USED) if e.data["model_class"] == "large"]
    read = [int(d["input_tokens"]) - int(d["cache_read_input_tokens"]) for d in used]
    assert drops >= 2
    # the first message reads its user turn after the warmed persona; every later one,
    # drops included, no more than that: the answer before it is in the cache already
    assert all(0 < n <= read[0] for n in read[1:8]), read
    # Bob's first message: the persona and his message, as Ada's first was (none of hers)
    assert used[8]["input_tokens"] == used[0]["input_tokens"], used
