"""The warm-up (``carrier.warming``): a started runtime warms its embedding and large
models in the background with the agent's persona only; a failure never stops it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import EventRecorder, FakeModel
from carrier.types import EventType, IncomingMessage, ModelClass, ModelRequest


class WarmingModel(FakeModel):
    """A scripted model that records its warm-ups; ``fail`` makes them raise and
    ``hold`` keeps them waiting until set."""

    __test__ = False

    def __init__(self, *, fail: bool = False, hold: asyncio.Event | None = None, **kw: object):
        super().__init__(**kw)  # type: ignore[arg-type]
        self.warmed: list[ModelRequest] = []
        self.fail = fail
        self.hold = hold

    async def warm_up(self, prefix: ModelRequest) -> None:
        self.warmed.append(prefix)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise RuntimeError("the weights are broken")


CHARACTER = Character(name="Testy", system="You are Testy.", bio=["Testy tests things."])


def runtime_on(host: PluginHost, large: FakeModel, **kw: object) -> AgentRuntime:
    embedder = WarmingModel(name="embedder", embedding_dimension=16)
    return AgentRuntime(
        CHARACTER,
        host=host,
        store=InMemoryStore(),
        models={"large": large, "small": FakeModel(), "embedding": embedder},
        **kw,  # type: ignore[arg-type]
    )


async def test_the_large_model_warms_with_the_persona_every_room_begins_with(
    host: PluginHost, events: EventRecorder
) -> None:
    large = WarmingModel()
    async with runtime_on(host, large) as runtime:
        await runtime.warmed()
        for user in ("ada", "bob"):  # two users: the warmed prefix holds neither
            await runtime.handle(
                IncomingMessage(text=f"I am {user}.", user_id=user, user_name=user.title())
            )
        embedder = runtime.model(ModelClass.EMBEDDING).primary
    (prefix,) = large.warmed
    assert prefix.model_class is ModelClass.LARGE
    assert prefix.messages == []
    assert prefix.system
    assert prefix.system.startswith("You are Testy.")
    for request in large.requests:
        assert request.system is not None
        assert request.system.startswith(prefix.system)
    assert "ada" not in prefix.system.lower()
    assert "bob" not in prefix.system.lower()
    assert isinstance(embedder, WarmingModel)
    assert [p.model_class for p in embedder.warmed] == [ModelClass.EMBEDDING]
    warmed = events.of(EventType.MODEL_WARMED)
    assert [e.data["model_class"] for e in warmed] == ["embedding", "large"]
    assert all(e.data["ok"] and e.message_id is None for e in warmed)


async def test_start_does_not_wait_for_the_warm_up(host: PluginHost) -> None:
    hold = asyncio.Event()
    large = WarmingModel(hold=hold)
    async with runtime_on(host, large) as runtime:
        reply = await runtime.handle(IncomingMessage(text="hi", user_id="ada"))
        assert reply.texts == ["ok"]  # the fake model needs no warm-up to answer
        with pytest.raises(TimeoutError):  # still warming
            await asyncio.wait_for(runtime.warmed(), timeout=0.05)
        hold.set()
        await asyncio.wait_for(runtime.warmed(), timeout=5)


async def test_stopping_cancels_a_warm_up_in_flight(host: PluginHost) -> None:
    large = WarmingModel(hold=asyncio.Event())  # never released
    runtime = runtime_on(host, large)
    await runtime.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(runtime.stop(), timeout=5)


async def test_a_failed_warm_up_is_logged_and_the_runtime_answers(
    host: PluginHost, events: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    large = WarmingModel(fail=True)
    with caplog.at_level(logging.WARNING, logger="carrier.runtime"):
        async with runtime_on(host, large) as runtime:
            await runtime.warmed()  # raises nothing
            reply = await runtime.handle(IncomingMessage(text="hi", user_id="ada"))
    assert reply.texts == ["ok"]
    assert "Warming up the large model fake failed" in caplog.text
    assert "the weights are broken" in caplog.text
    (failed,) = [e for e in events.of(EventType.MODEL_WARMED) if e.data["model_class"] == "large"]
    assert not failed.data["ok"]
    assert failed.data["error"] == "RuntimeError: the weights are broken"


async def test_warm_up_can_be_turned_off_per_runtime(
    host: PluginHost, events: EventRecorder
) -> None:
    large = WarmingModel()
    async with runtime_on(host, large, warm_up=False) as runtime:
        await runtime.warmed()
    assert large.warmed == []
    assert events.of(EventType.MODEL_WARMED) == []


async def test_a_model_that_does_not_warm_reports_nothing(
    host: PluginHost, events: EventRecorder
) -> None:
    async with AgentRuntime(
        CHARACTER,
        host=host,
        store=InMemoryStore(),
        models={"large": FakeModel(), "embedding": None},
    ) as runtime:
        await runtime.warmed()
    assert events.of(EventType.MODEL_WARMED) == []
