"""A message the agent refuses (too long, a character no store can keep): its sender is
told why, as a reply, once; the journal lets it go; other users are answered, and an
unaddressed refused message is dropped without a word."""

from __future__ import annotations

import asyncio

from carrier_plugin_discord.testing import FakeDiscord

from .conftest import ALICE, BOB, DM_ALICE, GUILD, TEXT, ServeFactory


async def test_a_refused_message_is_explained_to_its_sender_and_others_are_answered(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        served.runtime.settings.max_message_chars = 20
        long = fake.message(channel_id=DM_ALICE, user_id=ALICE, content="x" * 30)
        quiet = fake.message(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="y" * 30)
        hello = fake.message(
            channel_id=TEXT, guild_id=GUILD, user_id=BOB, content="hi", mentions_bot=True
        )
        for message in (long, quiet, hello):
            fake.dispatch("MESSAGE_CREATE", message)
        sent = await fake.wait_sent(2)
        await asyncio.sleep(0.3)  # nothing more comes
        journal = await served.runtime.plugin_state("discord").items("inbox:")
    assert len(fake.sent) == 2
    by_channel = {s["channel_id"]: s for s in sent}
    assert "30 characters; this agent accepts at most 20" in by_channel[DM_ALICE]["content"]
    assert by_channel[DM_ALICE]["message_reference"]["message_id"] == int(long["id"])
    assert by_channel[TEXT]["content"] == "hello from the agent"
    assert by_channel[TEXT]["message_reference"]["message_id"] == int(hello["id"])
    assert journal == []
