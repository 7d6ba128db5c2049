"""Outgoing messages: long answers split in order, flood control, typing, SEND_MESSAGE."""

from __future__ import annotations

import asyncio
import time

from carrier_plugin_telegram.chunks import utf16_len
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.errors import ModelRejectedError
from carrier.testing import EventRecorder, FakeModel
from carrier.types import EventType

from .conftest import ServeFactory, wait_until


def _long_answer() -> str:
    paragraph = ("This sentence is part of a long answer about many things. " * 9).strip()
    paragraphs = [f"{n}. {paragraph}" for n in range(1, 200)]
    text = ""
    for part in paragraphs:
        if len(text) + len(part) + 2 > 10_000:
            break
        text += part + "\n\n"
    return text.strip()


async def test_a_10000_character_answer_arrives_as_three_messages_in_order(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    answer = _long_answer()
    assert 9_000 < len(answer) <= 10_000
    async with serve(model=FakeModel(default_text=answer)):
        question = fake.private_message(user_id=7, text="tell me everything")
        fake.queue_message(question)
        sent = await fake.wait_sent(3)
        await asyncio.sleep(0.3)
    assert len(fake.sent) == 3
    texts = [str(s["text"]) for s in sent]
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert "\n\n".join(texts) == answer  # split on paragraph breaks, nothing lost
    assert sent[0]["reply_parameters"]["message_id"] == question["message_id"]  # type: ignore[index]
    assert "reply_parameters" not in sent[1]


async def test_flood_control_delays_then_delivers_every_message_once(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    model = FakeModel()
    for n in range(3):
        model.queue(f"answer {n}")
    async with serve(model=model):
        fake.fail_next("sendMessage", status=429, retry_after=1)
        started = time.monotonic()
        for n in range(3):
            fake.queue_message(fake.private_message(user_id=7, text=f"question {n}"))
        await fake.wait_sent(3)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)
    assert [s["text"] for s in fake.sent] == ["answer 0", "answer 1", "answer 2"]
    assert len(fake.calls_to("sendMessage")) == 4  # one refused, then each once
    assert elapsed >= 1.0


async def test_the_typing_indicator_stops_when_the_model_fails(
    serve: ServeFactory, fake: FakeTelegram, events: EventRecorder
) -> None:
    model = FakeModel()
    model.queue(error=ModelRejectedError("the model refused"))
    async with serve(model=model):
        fake.queue_message(fake.private_message(user_id=7, text="hello?"))
        await wait_until(lambda: bool(events.of(EventType.RUN_FAILED)))
        await asyncio.sleep(0.1)
        typed = len(fake.calls_to("sendChatAction"))
        await asyncio.sleep(0.4)  # eight typing intervals
        assert len(fake.calls_to("sendChatAction")) == typed
    assert typed >= 1
    assert fake.calls_to("sendChatAction")[0].params["action"] == "typing"
    assert fake.sent == []


async def test_the_typing_indicator_runs_while_the_agent_works_and_stops_after(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve(model=FakeModel(default_text="done", latency_s=0.3)):
        fake.queue_message(fake.private_message(user_id=7, text="think hard"))
        await fake.wait_sent(1)
        typed = len(fake.calls_to("sendChatAction"))
        await asyncio.sleep(0.3)
        assert len(fake.calls_to("sendChatAction")) == typed
    assert typed >= 3  # renewed while the model worked
