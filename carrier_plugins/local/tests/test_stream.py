"""Streaming yields tokens as they come; a cancelled stream frees the model."""

from __future__ import annotations

import asyncio
import contextlib

from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings

from carrier.types import ChatMessage, ModelRequest, StreamChunk

REQUEST = ModelRequest(
    messages=[ChatMessage(role="user", content="Tell me a story about a lighthouse.")],
    max_tokens=40,
    seed=7,
)


async def test_stream_yields_tokens_incrementally() -> None:
    # Runs to max_tokens: no stop at a blank line here.
    settings = LocalSettings(_env_file=None, context_size=2048, seed=0, stop_at_blank_line=False)
    model = build_model(settings)
    try:
        chunks: list[StreamChunk] = [chunk async for chunk in model.stream(REQUEST)]
    finally:
        await model.aclose()
    deltas, final = chunks[:-1], chunks[-1]
    assert len(deltas) > 1
    assert all(chunk.text and chunk.response is None for chunk in deltas)
    assert final.response is not None
    assert "".join(chunk.text for chunk in deltas) == final.response.text
    assert final.response.usage.output_tokens == 40
    assert final.response.finish_reason == "length"


async def test_closing_a_stream_midway_frees_the_model(model: LocalModel) -> None:
    received = 0
    long_request = REQUEST.model_copy(update={"max_tokens": 400})
    async with contextlib.aclosing(model.stream(long_request)) as it:
        async for _chunk in it:
            received += 1
            if received == 3:
                break
    response = await asyncio.wait_for(model.generate(REQUEST), timeout=30)
    assert response.text


async def test_cancelling_a_streaming_task_frees_the_model(model: LocalModel) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _chunk in model.stream(REQUEST.model_copy(update={"max_tokens": 400})):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    response = await asyncio.wait_for(model.generate(REQUEST), timeout=30)
    assert response.text


async def test_generation_does_not_block_the_event_loop(model: LocalModel) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await model.generate(REQUEST.model_copy(update={"max_tokens": 60}))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert ticks >= 5
