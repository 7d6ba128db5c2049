"""A message the agent refuses (too long, a character no store can keep): its sender is
told why, in their chat, once; the journal lets it go; other users are answered."""

from __future__ import annotations

import asyncio

from carrier_plugin_telegram.testing import FakeTelegram

from .conftest import ServeFactory


async def test_a_refused_message_is_explained_to_its_sender_and_others_are_answered(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve() as served:
        served.runtime.settings.max_message_chars = 20
        fake.queue_message(fake.private_message(user_id=7, text="x" * 30))
        fake.queue_message(fake.private_message(user_id=8, text="hello"))
        sent = await fake.wait_sent(2)
        await asyncio.sleep(0.3)  # nothing more comes
        journal = await served.runtime.plugin_state("telegram").items("inbox:")
    assert len(fake.sent) == 2
    by_chat = {int(str(s["chat_id"])): str(s["text"]) for s in sent}
    assert by_chat[8] == "hello from the agent"
    assert "30 characters; this agent accepts at most 20" in by_chat[7]
    assert journal == []
