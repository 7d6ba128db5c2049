"""Per-room order under concurrency; replays never answer twice."""

from __future__ import annotations

import asyncio
import random

from carrier.runtime import AgentRuntime
from carrier.testing import FunctionModel
from carrier.types import IncomingMessage, ModelRequest


async def test_100_rooms_x_10_messages_keep_order_none_lost_none_duplicated(host, character):
    seen: dict[str, list[int]] = {}

    async def answer(request: ModelRequest) -> str:
        text = request.messages[-1].content
        room, number = text.split(":")
        seen.setdefault(room, []).append(int(number))
        await asyncio.sleep(random.random() / 1000)  # interleave rooms
        return f"ack {text}"

    model = FunctionModel(answer)
    runtime = AgentRuntime(character, host=host, models={"large": model, "embedding": None})
    async with runtime:
        messages = [
            IncomingMessage(
                text=f"room{r}:{n}", user_id=f"u{r}", room_id=f"room{r}", message_id=f"room{r}-{n}"
            )
            for n in range(10)
            for r in range(100)
        ]
        # submitted concurrently, in per-room order
        replies = await asyncio.gather(*(runtime.handle(m) for m in messages))
        assert all(r.error is None for r in replies)
        assert [r.texts for r in replies] == [[f"ack {m.text}"] for m in messages]
        assert seen == {f"room{r}": list(range(10)) for r in range(100)}
        for r in range(100):
            stored = await runtime.store.get_memories(
                agent_id=runtime.agent_id, room_id=f"room{r}", limit=100
            )
            assert [m.content.text for m in stored] == [
                t for n in range(10) for t in (f"room{r}:{n}", f"ack room{r}:{n}")
            ]
        # the executor forgot every room once idle (evaluators done)
        await runtime.executor.aclose()
        assert runtime.executor.active_rooms == 0  # type: ignore[attr-defined]

        # replaying every message, concurrently, yields no second response
        again = await asyncio.gather(*(runtime.handle(m) for m in messages))
        assert all(r.duplicate for r in again)
        assert [r.texts for r in again] == [[f"ack {m.text}"] for m in messages]
        assert len(model.requests) == 1000
        total = await runtime.store.count_memories(agent_id=runtime.agent_id)
        assert total == 2000


async def test_concurrent_duplicates_of_one_message_answer_once(
    runtime: AgentRuntime, fake_model
) -> None:
    message = IncomingMessage(text="hello", user_id="bob", room_id="r", message_id="dup-1")
    replies = await asyncio.gather(*(runtime.handle(message) for _ in range(5)))
    assert sum(not r.duplicate for r in replies) == 1
    assert len(fake_model.requests) == 1
    assert all(r.texts == ["ok"] for r in replies)
