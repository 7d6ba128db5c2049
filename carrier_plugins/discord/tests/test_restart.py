"""What survives a restart: a message accepted but not answered (the journal) is
answered at the next start, once; one whose answer was already recorded is not sent
again."""

from __future__ import annotations

import asyncio

from carrier_plugin_discord.testing import FakeDiscord

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.plugin_state import PluginState
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, RoomType

from .conftest import ALICE, BOB, DM_ALICE, DM_BOB, ServeFactory


def _journal_entry(fake: FakeDiscord, *, channel: int, user: int, text: str) -> dict[str, object]:
    message = fake.snowflake()
    incoming = IncomingMessage(
        text=text,
        user_id=f"discord:{user}",
        user_name=f"user{user}",
        room_id=f"discord:{fake.bot_id}:{channel}",
        room_type=RoomType.DIRECT,
        source="discord",
        message_id=f"discord:{fake.bot_id}:{channel}:{message}",
        metadata={"discord": {"respond": True, "channel_id": channel, "message_id": message}},
    )
    return {
        "incoming": incoming.model_dump(mode="json"),
        "channel_id": channel,
        "reply_to": message,
    }


async def test_a_journaled_message_is_answered_once_after_a_restart(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="answered")
    store = InMemoryStore()
    await store.open()
    state = PluginState(store, "discord", Character(name="Testy").id)
    async with serve(store=store, model=model):
        answered = fake.message(channel_id=DM_ALICE, user_id=ALICE, content="first")
        fake.dispatch("MESSAGE_CREATE", answered)
        await fake.wait_sent(1)
        await asyncio.sleep(0.1)
        assert await state.items("inbox:") == []  # cleared once the answer was recorded
    # a crash after the answer was recorded, before the entry was cleared ...
    key = f"discord:{fake.bot_id}:{DM_ALICE}:{answered['id']}"
    again = _journal_entry(fake, channel=DM_ALICE, user=ALICE, text="first")
    again["incoming"]["message_id"] = key  # type: ignore[index]
    again["reply_to"] = int(answered["id"])
    await state.set(f"inbox:{key}", again)
    # ... and one before Bob's message reached the model
    lost = _journal_entry(fake, channel=DM_BOB, user=BOB, text="did you get this?")
    await state.set(f"inbox:{lost['incoming']['message_id']}", lost)  # type: ignore[index]
    async with serve(store=store, model=model):
        await fake.wait_sent(2)
        await asyncio.sleep(0.3)
        assert await state.items("inbox:") == []
    assert [(s["channel_id"], s["content"]) for s in fake.sent] == [
        (DM_ALICE, "answered"),
        (DM_BOB, "answered"),
    ]
    assert fake.sent[1]["message_reference"]["message_id"] == lost["reply_to"]
    assert len(model.requests) == 2
