"""Every hook and setting does what it says: streamed text as stored, continuation steps
streamed, observers and providers bounded in time, dynamic providers on request,
``carrier_choose_model`` and ``CARRIER_EXECUTOR``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import pytest

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.executor import InProcessExecutor
from carrier.protocols import Action, Provider
from carrier.settings import CarrierSettings
from carrier.streaming import SpeakerLabelFilter
from carrier.testing.fakes import EventRecorder, FakeModel, prompt_text
from carrier.types import ActionResult, Event, EventType, ModelClass, ProviderOutput


def _runtime(host: PluginHost, character, model: FakeModel | None = None) -> AgentRuntime:
    models = {"large": model, "small": model, "embedding": None} if model else None
    return AgentRuntime(character, host=host, store=InMemoryStore(), models=models)


async def _collect(runtime: AgentRuntime, text: str) -> tuple[str, list[str]]:
    chunks: list[str] = []

    async def on_text(delta: str) -> None:
        chunks.append(delta)

    reply = await runtime.handle(IncomingMessage(text=text, room_id="r"), on_text=on_text)
    return "".join(chunks), reply.texts


@pytest.mark.parametrize(
    "answer", ["Testy: Hello world", "  testy :Hello world", "TESTY:Hello world"]
)
async def test_the_speaker_label_never_reaches_a_stream(host, character, answer: str) -> None:
    async with _runtime(host, character, FakeModel(default_text=answer)) as runtime:
        streamed, stored = await _collect(runtime, "hi")
    assert streamed == "Hello world"
    assert stored == ["Hello world"]


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["Tes", "ty", ": ", "Hi"], "Hi"),
        (["Test", " results are in"], "Test results are in"),
        (["Te"], "Te"),  # a whole answer shorter than a label
        (["Hello ", "Testy: no"], "Hello Testy: no"),
    ],
)
async def test_label_filter_holds_back_only_a_possible_label(
    deltas: list[str], expected: str
) -> None:
    out: list[str] = []

    async def on_text(delta: str) -> None:
        out.append(delta)

    labels = SpeakerLabelFilter(["Testy"], on_text)
    for delta in deltas:
        await labels.send(delta)
    await labels.flush()
    assert "".join(out) == expected


class Again(Action):
    name = "AGAIN"

    async def handler(self, runtime, message, state, arguments) -> ActionResult:
        return ActionResult(name=self.name, continue_chain=True)


class Fetch(Action):
    """Asks for the dynamic provider before the next step."""

    name = "FETCH"

    async def handler(self, runtime, message, state, arguments) -> ActionResult:
        await runtime.provide("secret_stash", message, state)
        return ActionResult(name=self.name, continue_chain=True)


class Stash(Provider):
    name = "secret_stash"
    dynamic = True
    calls: ClassVar[int] = 0

    async def get(self, runtime, message, state) -> ProviderOutput:
        Stash.calls += 1
        return ProviderOutput(text="The stash holds 3 gold coins.")


class Sleepy(Provider):
    name = "sleepy"
    timeout_s = 30.0

    async def get(self, runtime, message, state) -> ProviderOutput:
        await asyncio.sleep(5)
        return ProviderOutput(text="late")


class Parts:
    @carrier.hookimpl
    def carrier_register_actions(self, actions) -> None:
        actions.add("AGAIN", Again)
        actions.add("FETCH", Fetch)

    @carrier.hookimpl
    def carrier_register_providers(self, providers) -> None:
        providers.add("secret_stash", Stash)


async def test_continuation_steps_stream_after_a_blank_line(host, character) -> None:
    host.register(Parts(), name="parts")
    model = FakeModel()
    model.queue("First part.", actions=["AGAIN"])
    model.queue("Second part.")
    async with _runtime(host, character, model) as runtime:
        streamed, stored = await _collect(runtime, "go")
    assert stored == ["First part.", "Second part."]
    assert streamed == "First part.\n\nSecond part."


async def test_dynamic_providers_run_only_when_an_action_asks(host, character) -> None:
    host.register(Parts(), name="parts")
    Stash.calls = 0
    model = FakeModel()
    async with _runtime(host, character, model) as runtime:
        await runtime.handle(IncomingMessage(text="hello", room_id="r"))
        assert Stash.calls == 0
        assert "gold coins" not in prompt_text(model.requests[-1])
        model.queue("Let me look.", actions=["FETCH"])
        model.queue("Three coins.")
        await runtime.handle(IncomingMessage(text="what is in the stash?", room_id="r"))
    assert Stash.calls == 1
    assert "3 gold coins" in prompt_text(model.requests[-1])
    with pytest.raises(carrier.UnknownNameError, match="Did you mean 'secret_stash'"):
        await runtime.provide("secret_stsh", runtime.receive(IncomingMessage(text="x")), None)  # type: ignore[arg-type]


async def test_provider_timeout_setting_caps_every_provider(character) -> None:
    host = PluginHost(
        autoload=False, settings=CarrierSettings(provider_timeout_s=0.05, _env_file=None)
    )
    events = EventRecorder()
    host.register(events, name="events")

    class SleepyPlugin:
        @carrier.hookimpl
        def carrier_register_providers(self, providers) -> None:
            providers.add("sleepy", Sleepy)

    host.register(SleepyPlugin(), name="sleepy")
    async with _runtime(host, character, FakeModel()) as runtime:
        started = time.perf_counter()
        reply = await runtime.handle(IncomingMessage(text="hi", room_id="r"))
        took = time.perf_counter() - started
    assert reply.texts == ["ok"]
    assert took < 2
    (failed,) = events.of(EventType.PROVIDER_FAILED)
    assert failed.data["provider"] == "sleepy"


async def test_a_slow_observer_cannot_stall_the_loop(
    character, caplog: pytest.LogCaptureFixture
) -> None:
    host = PluginHost(
        autoload=False, settings=CarrierSettings(observer_timeout_s=0.05, _env_file=None)
    )

    class SlowObserver:
        @carrier.hookimpl
        async def carrier_on_event(self, event: Event) -> None:
            await asyncio.sleep(10)

    host.register(SlowObserver(), name="slow")
    with caplog.at_level(logging.ERROR, logger="carrier.host"):
        async with _runtime(host, character, FakeModel()) as runtime:
            started = time.perf_counter()
            reply = await runtime.handle(IncomingMessage(text="hi", room_id="r"))
            took = time.perf_counter() - started
    assert reply.texts == ["ok"]
    assert took < 5  # about a dozen events, each waiting 0.05 s at most
    assert "CARRIER_OBSERVER_TIMEOUT_S" in caplog.text


class Chooser:
    @carrier.hookimpl
    def carrier_register_models(self, models) -> None:
        models.add("picked", lambda **_: FakeModel(name="picked", default_text="from picked"))

    @carrier.hookimpl
    def carrier_choose_model(self, runtime, model_class, available) -> str | None:
        return "picked" if model_class is ModelClass.LARGE and "picked" in available else None


async def test_the_runtime_asks_carrier_choose_model(host, character) -> None:
    host.register(Chooser(), name="chooser")
    async with _runtime(host, character) as runtime:
        assert runtime.model(ModelClass.LARGE).primary.name == "picked"
        assert runtime.model(ModelClass.SMALL).primary.name != "picked"
        reply = await runtime.handle(IncomingMessage(text="hi", room_id="r"))
    assert reply.texts == ["from picked"]


class Custom(InProcessExecutor):
    name = "custom"


class ExecutorChooser:
    @carrier.hookimpl
    def carrier_register_executors(self, executors) -> None:
        executors.add("custom", Custom)

    @carrier.hookimpl
    def carrier_choose_executor(self, runtime, available) -> str | None:
        return "custom"


@pytest.mark.parametrize(("setting", "expected"), [(None, "custom"), ("inprocess", "inprocess")])
async def test_carrier_executor_overrides_the_hook(
    character, setting: str | None, expected: str
) -> None:
    host = PluginHost(autoload=False, settings=CarrierSettings(executor=setting, _env_file=None))
    host.register(ExecutorChooser(), name="executor-chooser")
    async with _runtime(host, character, FakeModel()) as runtime:
        assert runtime.executor.name == expected
