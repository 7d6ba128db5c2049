"""Guild channels, threads, forum posts and DMs, end to end: the real client and
discord.py against the fake gateway and REST API; two users who never see each other's
answers."""

from __future__ import annotations

import asyncio

from carrier_plugin_discord.testing import FakeDiscord

from carrier.testing import FakeModel

from .conftest import (
    ALICE,
    BOB,
    DM_ALICE,
    DM_BOB,
    FORUM_POST,
    GUILD,
    TEXT,
    THREAD,
    ServeFactory,
)


async def test_a_mention_and_a_dm_are_answered_as_replies(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        assert served.health.detail == f"connected as @{fake.bot_name}"
        mention = fake.message(
            channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="hi", mentions_bot=True
        )
        dm = fake.message(channel_id=DM_BOB, user_id=BOB, content="hello there")
        fake.dispatch("MESSAGE_CREATE", mention)
        fake.dispatch("MESSAGE_CREATE", dm)
        sent = await fake.wait_sent(2)
        await asyncio.sleep(0.2)
    assert len(fake.sent) == 2
    by_channel = {s["channel_id"]: s for s in sent}
    assert by_channel[TEXT]["content"] == "hello from the agent"
    assert by_channel[TEXT]["message_reference"]["message_id"] == int(mention["id"])
    assert by_channel[DM_BOB]["message_reference"]["message_id"] == int(dm["id"])
    # model output never pings: only the replied-to author may be notified
    assert by_channel[TEXT]["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert TEXT in fake.typing
    assert DM_BOB in fake.typing


async def test_an_unaddressed_guild_message_is_stored_not_answered(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="hi")
    async with serve(model=model) as served:
        quiet = fake.message(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="lunch?")
        fake.dispatch("MESSAGE_CREATE", quiet)
        named = fake.message(
            channel_id=TEXT, guild_id=GUILD, user_id=BOB, content="Testy, are you there?"
        )
        fake.dispatch("MESSAGE_CREATE", named)
        await fake.wait_sent(1)
        await asyncio.sleep(0.2)
        bot_id = fake.bot_id
        stored = await served.runtime.store.get_memory(f"discord:{bot_id}:{TEXT}:{quiet['id']}")
        reply = fake.message(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=ALICE,
            content="thanks",
            reply_to=fake._sent_message(TEXT, {"content": "hi"}),
        )
        fake.dispatch("MESSAGE_CREATE", reply)
        await fake.wait_sent(2)
    assert stored is not None
    assert stored.content.text == "lunch?"
    assert stored.room_id == f"discord:{bot_id}:{TEXT}"
    assert stored.world_id == f"discord:{bot_id}:guild:{GUILD}"
    assert stored.entity_id == f"discord:{ALICE}"
    assert [s["message_reference"]["message_id"] for s in fake.sent] == [
        int(named["id"]),
        int(reply["id"]),
    ]
    assert len(model.requests) == 2


async def test_threads_and_forum_posts_are_rooms_of_the_guild(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        for channel in (THREAD, FORUM_POST):
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(
                    channel_id=channel,
                    guild_id=GUILD,
                    user_id=ALICE,
                    content="q",
                    mentions_bot=True,
                ),
            )
        await fake.wait_sent(2)
        rooms = [
            await served.runtime.store.get_room(f"discord:{fake.bot_id}:{c}")
            for c in (THREAD, FORUM_POST)
        ]
    assert sorted(s["channel_id"] for s in fake.sent) == [THREAD, FORUM_POST]
    for room in rooms:
        assert room is not None
        assert room.type == "thread"
        assert room.world_id == f"discord:{fake.bot_id}:guild:{GUILD}"


async def test_bots_are_never_answered(serve: ServeFactory, fake: FakeDiscord) -> None:
    model = FakeModel(default_text="hi")
    async with serve(model=model):
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(
                channel_id=TEXT,
                guild_id=GUILD,
                user_id=50,
                content="hey",
                mentions_bot=True,
                bot=True,
            ),
        )
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_ALICE, user_id=51, content="loop?", bot=True),
        )
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="a human")
        )
        await fake.wait_sent(1)
        await asyncio.sleep(0.3)
    assert [s["channel_id"] for s in fake.sent] == [DM_ALICE]
    assert len(model.requests) == 1


async def test_a_duplicate_message_create_is_answered_once(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="only once")
    async with serve(model=model):
        message = fake.message(channel_id=DM_ALICE, user_id=ALICE, content="sure?")
        fake.dispatch("MESSAGE_CREATE", message)
        fake.dispatch("MESSAGE_CREATE", message)
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="next")
        )
        await fake.wait_sent(2)
        await asyncio.sleep(0.3)
    assert len(fake.sent) == 2
    assert len(model.requests) == 2


async def test_channel_allowlist_and_listen_only_channels(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    from .conftest import OTHER_GUILD, OTHER_TEXT

    model = FakeModel(default_text="hi")
    async with serve(model=model, allowed_channels=f"{TEXT}", listen_channels=f"{THREAD}") as s:
        # a thread counts as its parent channel: allowed, but listen-only
        for channel, guild in ((OTHER_TEXT, OTHER_GUILD), (THREAD, GUILD), (TEXT, GUILD)):
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(
                    channel_id=channel,
                    guild_id=guild,
                    user_id=ALICE,
                    content=f"in {channel}",
                    mentions_bot=True,
                ),
            )
        await fake.wait_sent(1)
        await asyncio.sleep(0.3)
        heard = await s.runtime.store.get_memories(
            agent_id=s.runtime.agent_id, room_id=f"discord:{fake.bot_id}:{THREAD}"
        )
        ignored = await s.runtime.store.get_memories(
            agent_id=s.runtime.agent_id, room_id=f"discord:{fake.bot_id}:{OTHER_TEXT}"
        )
    assert [m["channel_id"] for m in fake.sent] == [TEXT]
    assert [m.content.text for m in heard if m.entity_id == f"discord:{ALICE}"] == [
        f"@Testy in {THREAD}"
    ]
    assert ignored == []


async def test_typing_stops_when_the_agent_fails(serve: ServeFactory, fake: FakeDiscord) -> None:
    class Broken(FakeModel):
        async def generate(self, request):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.2)  # long enough for the indicator to be renewed
            raise RuntimeError("the model is down")

    async with serve(model=Broken()):
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="hi")
        )
        await fake.wait_for(lambda: fake.typing.count(DM_ALICE) >= 2)
        await asyncio.sleep(0.4)
        shown = fake.typing.count(DM_ALICE)
        await asyncio.sleep(0.3)  # six renewal intervals: none comes
        assert fake.typing.count(DM_ALICE) == shown
    assert fake.sent == []


async def test_guild_policy_all_answers_every_guild_message(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve(guild_policy="all"):
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="anyone?"),
        )
        (sent,) = await fake.wait_sent(1)
    assert sent["channel_id"] == TEXT
