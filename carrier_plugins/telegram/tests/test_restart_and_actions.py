"""What survives a restart (the outbox), and SEND_MESSAGE reaching another Telegram room."""

from __future__ import annotations

import asyncio

import carrier_plugin_bootstrap.plugin
import pytest
from carrier_plugin_telegram import convert
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.outbox import Outbox
from carrier.testing import FunctionModel
from carrier.types import ActionCall, ModelRequest, ModelResponse

from .conftest import ServeFactory


async def test_chunks_a_previous_run_left_unsent_go_out_first_in_order(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    store = InMemoryStore()
    await store.open()
    outbox = Outbox(store, "telegram", Character(name="Testy").id)
    bodies = [
        {"chat_id": 7, "thread_id": None, "text": f"part {n}", "reply_to": None} for n in (1, 2)
    ]
    await outbox.put("7", bodies)
    async with serve(store=store):
        await fake.wait_sent(2)
        fake.queue_message(fake.private_message(user_id=7, text="hello"))
        await fake.wait_sent(3)
        await asyncio.sleep(0.2)  # the mark follows Telegram's answer
        assert await outbox.pending() == []
    assert [s["text"] for s in fake.sent] == ["part 1", "part 2", "hello from the agent"]


async def test_send_message_from_a_direct_chat_reaches_a_group(
    host: PluginHost, serve: ServeFactory, fake: FakeTelegram
) -> None:
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")
    group_room = f"telegram:{fake.bot_id}:-100"

    def answer(request: ModelRequest) -> ModelResponse:
        asked = (
            request.actions
            and request.messages
            and "tell the group" in request.messages[-1].content
        )
        if asked:
            call = ActionCall(
                name="SEND_MESSAGE",
                arguments={"text": "The build is green.", "room_id": group_room},
            )
            return ModelResponse(text="Done.", action_calls=[call])
        return ModelResponse(text="noted")

    async with serve(model=FunctionModel(answer), owners="9"):
        text, entities = fake.mention("hello")
        fake.queue_message(
            fake.group_message(chat_id=-100, user_id=8, text=text, entities=entities)
        )
        await fake.wait_sent(1)
        fake.queue_message(fake.private_message(user_id=9, text="please tell the group"))
        await fake.wait_for(lambda: any(s["text"] == "The build is green." for s in fake.sent))
        await asyncio.sleep(0.3)
    relayed = [s for s in fake.sent if s["text"] == "The build is green."]
    assert len(relayed) == 1
    assert int(str(relayed[0]["chat_id"])) == -100
    assert "reply_parameters" not in relayed[0]
    assert any(s["text"] == "Done." and int(str(s["chat_id"])) == 9 for s in fake.sent)


@pytest.mark.parametrize("left", ["sent", "pending", "pending-without-note"])
async def test_an_update_journaled_after_its_answer_was_recorded_is_not_answered_again(
    serve: ServeFactory, fake: FakeTelegram, left: str
) -> None:
    """The crash came after the answer went into the outbox and before the journal
    entry was cleared: at the next start the answer reaches the chat exactly once
    (``left``: what the outbox held — the answer already sent, still pending, or
    pending with ``put`` cut off before its note)."""
    store = InMemoryStore()
    await store.open()
    message = fake.private_message(user_id=7, text="hello")
    update_id = fake.queue_message(message)
    key = convert.message_id(fake.bot_id, 7, message["message_id"])
    async with serve(store=store) as served:
        (answer,) = await fake.wait_sent(1)
        await asyncio.sleep(0.2)  # the journal entry goes after the send
        agent = served.runtime.agent_id
        state = served.runtime.plugin_state("telegram")
        # the state a crash leaves: the journal entry back, the outbox as ``left`` says
        await state.set(f"inbox:{key}", {"update_id": update_id, "message": message})
        if left != "sent":
            body = {"chat_id": 7, "thread_id": None, "text": answer["text"], "reply_to": None}
            await Outbox(store, "telegram", agent).put("7", [body], ref=key)
        if left == "pending-without-note":
            assert await store.delete_cache(f"outbox-ref:telegram:{agent}:{key}")
    before = len(fake.sent)
    # another user's message in the same restart is answered as usual
    fake.queue_message(fake.private_message(user_id=8, text="hi"))
    async with serve(store=store) as served:
        await fake.wait_for(lambda: any(int(s["chat_id"]) == 8 for s in fake.sent))
        await asyncio.sleep(0.3)
        assert await served.runtime.plugin_state("telegram").items("inbox:") == []
    again = [s for s in fake.sent[before:] if int(s["chat_id"]) == 7]
    assert len(again) == (0 if left == "sent" else 1)
    assert [s["text"] for s in fake.sent if int(s["chat_id"]) == 8] == ["hello from the agent"]
