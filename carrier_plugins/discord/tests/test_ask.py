"""``/ask`` with the contract of a message: the interaction's id is the message's, so a
duplicate ``INTERACTION_CREATE`` is answered once; the answer goes through the outbox
as follow-ups, so a crash between the answer and its delivery sends it once at the next
start, while an answer whose token expired is dropped; and each user's answer is their
own (a public ``/ask`` is said in the channel's shared room, a private one in the
asker's own room)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from carrier_plugin_discord.testing import FakeDiscord

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.outbox import Outbox
from carrier.plugin_state import PluginState
from carrier.testing import FakeModel, FunctionModel
from carrier.types import IncomingMessage, ModelRequest, RoomType

from .conftest import ALICE, BOB, GUILD, TEXT, ServeFactory

EPHEMERAL = 1 << 6


def _ask(fake: FakeDiscord, user: int, question: str, *, private: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"question": question, **({"private": True} if private else {})}
    return fake.interaction(
        channel_id=TEXT, guild_id=GUILD, user_id=user, command="ask", options=options
    )


async def _eventually(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - the store's state, polled
            await asyncio.sleep(0.02)


async def _answered(fake: FakeDiscord, ask: dict[str, Any]) -> None:
    before = len(fake.followups)
    fake.dispatch("INTERACTION_CREATE", ask)
    await fake.wait_for(lambda: len(fake.followups) > before)


async def test_a_duplicate_ask_calls_the_model_once_and_is_answered_once(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="forty-two")
    async with serve(model=model):
        ask = _ask(fake, ALICE, "meaning of life?")
        fake.dispatch("INTERACTION_CREATE", ask)
        fake.dispatch("INTERACTION_CREATE", ask)  # the same event again (a gateway replay)
        await fake.wait_for(lambda: len(fake.followups) == 1)
        await asyncio.sleep(0.3)
    assert len(model.requests) == 1
    assert [f["content"] for f in fake.followups] == ["forty-two"]
    assert [c["interaction_id"] for c in fake.callbacks] == [int(ask["id"])]


async def test_each_user_gets_their_own_answer_and_a_private_ask_stays_private(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    """Public ``/ask``s are said in the channel, so the channel's room holds them for
    everyone (as it holds mentions); a private one reaches no one else's prompt."""
    prompts: list[str] = []

    def answer(request: ModelRequest) -> str:
        prompt = str(request.model_dump())
        prompts.append(prompt)
        (word,) = [w for w in ("PLUM", "PEAR", "FIG", "KIWI") if w in str(request.messages[-1])]
        return f"noted {word}"

    model = FunctionModel(answer)
    asks = [
        _ask(fake, ALICE, "my public word is PLUM"),
        _ask(fake, BOB, "my public word is FIG"),
        _ask(fake, ALICE, "my secret word is PEAR", private=True),
        _ask(fake, BOB, "my secret word is KIWI", private=True),
    ]
    async with serve(model=model) as served:
        for ask in asks:
            await _answered(fake, ask)
        runtime = served.runtime
        private = await runtime.store.get_room(f"discord:{fake.bot_id}:{TEXT}:private:{ALICE}")
    answers = {f["token"]: f for f in fake.followups}
    expected = ("noted PLUM", "noted FIG", "noted PEAR", "noted KIWI")
    for ask, text in zip(asks, expected, strict=True):
        assert answers[ask["token"]]["content"] == text  # to the asker's own interaction
    assert not answers[asks[0]["token"]].get("flags", 0) & EPHEMERAL
    assert answers[asks[2]["token"]]["flags"] & EPHEMERAL
    _, fig, pear, kiwi = prompts
    assert "PLUM" in fig  # the channel's room is shared by design
    assert "PEAR" not in kiwi  # Alice's private question never reaches Bob's prompts ...
    assert "KIWI" not in pear  # ... nor Bob's hers
    assert "FIG" not in pear  # a private room is the asker's alone
    assert private is not None
    assert private.type is RoomType.DIRECT
    assert private.owner_id == f"discord:{ALICE}"


def _entry(fake: FakeDiscord, ask: dict[str, Any], *, expires_at: float) -> dict[str, Any]:
    """The journal entry ``/ask`` leaves before its turn."""
    incoming = IncomingMessage(
        text=ask["data"]["options"][0]["value"],
        user_id=f"discord:{ask['member']['user']['id']}",
        room_id=f"discord:{fake.bot_id}:{TEXT}",
        room_type=RoomType.GROUP,
        source="discord",
        world_id=f"discord:{fake.bot_id}:guild:{GUILD}",
        message_id=f"discord:{fake.bot_id}:{TEXT}:{ask['id']}",
        metadata={"discord": {"respond": True, "channel_id": TEXT, "guild_id": GUILD}},
    )
    return {
        "incoming": incoming.model_dump(mode="json"),
        "channel_id": TEXT,
        "followup": {
            "interaction_id": int(ask["id"]),
            "application_id": fake.app_id,
            "token": ask["token"],
            "ephemeral": False,
            "expires_at": expires_at,
        },
    }


async def test_an_answer_recorded_but_not_sent_goes_out_once_after_a_restart(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="forty-two")
    store = InMemoryStore()
    await store.open()
    agent = Character(name="Testy").id
    outbox = Outbox(store, "discord", agent)
    state = PluginState(store, "discord", agent)
    alice = _ask(fake, ALICE, "meaning of life?")
    async with serve(store=store, model=model):
        fake.fail_followups(1)  # Discord is down when the answer is ready
        fake.dispatch("INTERACTION_CREATE", alice)
        await _eventually(lambda: _has_pending(outbox))
    assert fake.followups == []
    (left,) = await outbox.pending()
    assert left.ref == f"discord:{fake.bot_id}:{TEXT}:{alice['id']}"
    # a crash after the answer was recorded, before its journal entry was cleared ...
    await state.set(f"inbox:{left.ref}", _entry(fake, alice, expires_at=time.time() + 600))
    # ... and one before Bob's /ask reached the model
    bob = _ask(fake, BOB, "and mine?")
    lost = _entry(fake, bob, expires_at=time.time() + 600)
    await state.set(f"inbox:{lost['incoming']['message_id']}", lost)
    async with serve(store=store, model=model):
        await fake.wait_for(lambda: len(fake.followups) == 2)
        await asyncio.sleep(0.3)
        assert await outbox.pending() == []
        assert await state.items("inbox:") == []
    assert [(f["token"], f["content"]) for f in fake.followups] == [
        (alice["token"], "forty-two"),
        (bob["token"], "forty-two"),
    ]
    assert len(model.requests) == 2  # Alice's answer was not computed again


async def _has_pending(outbox: Outbox) -> bool:
    return bool(await outbox.pending())


async def test_an_answer_whose_token_expired_is_dropped_with_a_warning(
    serve: ServeFactory, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    model = FakeModel(default_text="forty-two")
    store = InMemoryStore()
    await store.open()
    agent = Character(name="Testy").id
    outbox = Outbox(store, "discord", agent)
    state = PluginState(store, "discord", agent)
    gone = time.time() - 1
    answered = _entry(fake, _ask(fake, ALICE, "first?"), expires_at=gone)
    body = {"channel_id": TEXT, "content": "too late", "reply_to": None}
    body["followup"] = answered["followup"]
    await outbox.put("interaction:1", [body], ref=answered["incoming"]["message_id"])
    unanswered = _entry(fake, _ask(fake, BOB, "second?"), expires_at=gone)
    await state.set(f"inbox:{unanswered['incoming']['message_id']}", unanswered)
    with caplog.at_level(logging.WARNING, logger="carrier_plugin_discord"):
        async with serve(store=store, model=model):
            await _eventually(lambda: _settled(outbox, state))
    assert fake.followups == []
    assert model.requests == []  # no answer is computed for a token that expired
    dropped = [r.getMessage() for r in caplog.records if "15 minutes" in r.getMessage()]
    assert len(dropped) == 2


async def _settled(outbox: Outbox, state: PluginState) -> bool:
    return not await outbox.pending() and not await state.items("inbox:")
