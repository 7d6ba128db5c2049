"""Direct messages and groups, end to end: the real client, PTB and the fake server."""

from __future__ import annotations

import asyncio

from carrier_plugin_telegram.testing import FakeTelegram

from carrier.testing import FakeModel

from .conftest import ServeFactory


def _chat(sent: dict[str, object]) -> int:
    return int(str(sent["chat_id"]))


async def test_a_direct_message_and_a_group_mention_are_answered_once(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve() as served:
        assert served.health.detail == f"polling as @{fake.username}"
        dm = fake.private_message(user_id=7, text="hello")
        fake.queue_message(dm)
        text, entities = fake.mention("what time is it?")
        group = fake.group_message(chat_id=-100, user_id=8, text=text, entities=entities)
        fake.queue_message(group)
        sent = await fake.wait_sent(2)
        await asyncio.sleep(0.3)  # nothing more comes
    assert len(fake.sent) == 2
    by_chat = {_chat(s): s for s in sent}
    assert by_chat[7]["text"] == "hello from the agent"
    assert by_chat[-100]["text"] == "hello from the agent"
    # each answer is threaded to the message it answers
    assert by_chat[7]["reply_parameters"]["message_id"] == dm["message_id"]  # type: ignore[index]
    assert by_chat[-100]["reply_parameters"]["message_id"] == group["message_id"]  # type: ignore[index]


async def test_a_group_message_without_mention_is_stored_but_not_answered(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve() as served:
        quiet = fake.group_message(chat_id=-100, user_id=8, text="lunch at noon, everyone?")
        fake.queue_message(quiet)
        text, entities = fake.mention("did you see that?")
        fake.queue_message(
            fake.group_message(chat_id=-100, user_id=8, text=text, entities=entities)
        )
        await fake.wait_sent(1)
        await asyncio.sleep(0.3)
        stored = await served.runtime.store.get_memory(
            f"telegram:{fake.bot_id}:-100:{quiet['message_id']}"
        )
    assert len(fake.sent) == 1
    assert fake.sent[0]["reply_parameters"]["message_id"] != quiet["message_id"]
    assert stored is not None
    assert stored.content.text == "lunch at noon, everyone?"


async def test_replies_to_the_bot_and_its_name_address_it(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve() as served:
        fake.queue_message(
            fake.group_message(chat_id=-100, user_id=8, text="Testy, are you there?")
        )
        (first,) = await fake.wait_sent(1)
        bot_message = {
            "message_id": 999,
            "date": 0,
            "chat": {"id": -100, "type": "supergroup", "title": "Group"},
            "from": {"id": fake.bot_id, "is_bot": True, "first_name": "bot"},
            "text": first["text"],
        }
        fake.queue_message(
            fake.group_message(chat_id=-100, user_id=8, text="thanks", reply_to_message=bot_message)
        )
        await fake.wait_sent(2)
        assert served.health.state == "running"


async def test_group_policy_all_answers_every_group_message(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve(group_policy="all"):
        fake.queue_message(fake.group_message(chat_id=-100, user_id=8, text="anyone?"))
        await fake.wait_sent(1)


async def test_another_bots_message_is_ignored(serve: ServeFactory, fake: FakeTelegram) -> None:
    model = FakeModel(default_text="hi")
    async with serve(model=model):
        text, entities = fake.mention("hello fellow bot")
        other_bot = fake.group_message(chat_id=-100, user_id=50, text=text, entities=entities)
        fake.queue_message(fake.bot_message(other_bot))
        fake.queue_message(fake.bot_message(fake.private_message(user_id=51, text="loop?")))
        fake.queue_message(fake.private_message(user_id=7, text="a human"))
        await fake.wait_sent(1)
        await asyncio.sleep(0.3)
    assert [_chat(s) for s in fake.sent] == [7]
    assert len(model.requests) == 1


async def test_only_allowlisted_groups_are_served(serve: ServeFactory, fake: FakeTelegram) -> None:
    async with serve(allowed_chats="-100"):
        for chat in (-200, -100):
            text, entities = fake.mention(f"hello from {chat}")
            fake.queue_message(
                fake.group_message(chat_id=chat, user_id=8, text=text, entities=entities)
            )
        await fake.wait_sent(1)
        await asyncio.sleep(0.3)
    assert [_chat(s) for s in fake.sent] == [-100]


async def test_a_redelivered_update_is_answered_once(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    model = FakeModel(default_text="only once")
    async with serve(model=model):
        message = fake.private_message(user_id=7, text="are you sure?")
        fake.queue_message(message)
        await fake.wait_sent(1)
        fake.queue_message(message)  # Telegram delivers the same message again
        fake.queue_message(fake.private_message(user_id=7, text="next"))
        await fake.wait_sent(2)
        await asyncio.sleep(0.3)
    assert [s["text"] for s in fake.sent] == ["only once", "only once"]
    replied = [s["reply_parameters"]["message_id"] for s in fake.sent]  # type: ignore[index]
    assert replied[0] == message["message_id"]
    assert replied[1] != message["message_id"]
    assert len(model.requests) == 2


async def test_a_forum_topic_is_its_own_room_and_gets_threaded_replies(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve() as served:
        text, entities = fake.mention("in the topic")
        topic = fake.group_message(
            chat_id=-300,
            user_id=8,
            text=text,
            entities=entities,
            forum=True,
            message_thread_id=42,
            is_topic_message=True,
        )
        fake.queue_message(topic)
        (sent,) = await fake.wait_sent(1)
        stored = await served.runtime.store.get_memory(
            f"telegram:{fake.bot_id}:-300:{topic['message_id']}"
        )
    assert int(str(sent["message_thread_id"])) == 42
    assert stored is not None
    assert stored.room_id == f"telegram:{fake.bot_id}:-300:42"
