"""Telegram with the workers executor: a worker answers and runs SEND_MESSAGE, and the
process that hosts the Telegram client delivers both (the worker has no bot)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import carrier_plugin_bootstrap.plugin
import carrier_plugin_telegram.plugin
import pytest
from carrier_plugin_telegram.testing import FakeTelegram

import carrier
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.services import Supervisor
from carrier.testing import FunctionModel
from carrier.types import ActionCall, ModelRequest, ModelResponse

GROUP = -100


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def character(fake: FakeTelegram) -> Character:
    settings = {
        "TOKEN": fake.token,
        "BASE_URL": fake.url,
        "POLL_TIMEOUT_S": "1",
        "DM_POLICY": "open",
        "OWNERS": "9",
        "DELIVERY_POLL_S": "0.2",
        "TYPING_INTERVAL_S": "60",
    }
    return Character(name="Testy", secrets={f"TELEGRAM_{k}": v for k, v in settings.items()})


class Models:
    """The ``scripted`` model: SEND_MESSAGE to the group when asked, else ``re: ...``."""

    def __init__(self, group_room: str) -> None:
        def answer(request: ModelRequest) -> ModelResponse:
            last = request.messages[-1].content
            if request.actions and "tell the group" in last:
                call = ActionCall(
                    name="SEND_MESSAGE",
                    arguments={"text": "The build is green.", "room_id": group_room},
                )
                return ModelResponse(text="Done.", action_calls=[call])
            return ModelResponse(text="re: " + last.rsplit(" ", 1)[-1])

        self.model = FunctionModel(answer, name="scripted")

    @carrier.hookimpl
    def carrier_register_models(self, models: Registry[Model]) -> None:
        models.add("scripted", lambda **_: self.model)


async def test_the_client_process_delivers_what_a_worker_answered_and_sent(
    host: PluginHost,
    character: Character,
    fake: FakeTelegram,
    start_worker: Callable[[], Awaitable[None]],
) -> None:
    host.register(carrier_plugin_telegram.plugin, name="telegram")
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")
    host.register(Models(f"telegram:{fake.bot_id}:{GROUP}"), name="scripted-models")
    await start_worker()
    async with (
        AgentRuntime(character, host=host) as runtime,
        Supervisor(host, [runtime], only=["telegram"], backoff_initial_s=0.1) as supervisor,
    ):
        (health,) = supervisor.health()
        async with asyncio.timeout(30):
            while health.state != "running":  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.05)
        text, entities = fake.mention("hello")
        fake.queue_message(
            fake.group_message(chat_id=GROUP, user_id=8, text=text, entities=entities)
        )
        (answer,) = await fake.wait_sent(1, timeout_s=30)
        assert (int(answer["chat_id"]), answer["text"]) == (GROUP, "re: hello")

        fake.queue_message(fake.private_message(user_id=9, text="please tell the group"))
        await fake.wait_for(lambda: len(fake.sent) >= 3, timeout_s=30)
        await asyncio.sleep(1.0)  # several delivery polls: nothing is sent twice
    sent = [(int(s["chat_id"]), s["text"]) for s in fake.sent]
    assert sorted(sent[1:]) == [(GROUP, "The build is green."), (9, "Done.")]
    assert len(sent) == 3
