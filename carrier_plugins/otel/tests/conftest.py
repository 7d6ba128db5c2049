"""Telemetry the tests can read: an SDK tracer provider writing to an in-memory
exporter, a meter provider with an in-memory reader, and a runtime wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from carrier_plugin_otel.testing import Telemetry

import carrier
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Action, Model
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.types import ActionResult


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.shutdown()


class Note(Action):
    """Takes a note; fails when asked to note "boom"."""

    name = "NOTE"
    description = "Takes a note."

    async def handler(self, runtime, message, state, arguments) -> ActionResult:  # type: ignore[no-untyped-def]
        if state.values.get("fail") or message.content.text == "boom":
            raise RuntimeError("the notebook is full")
        return ActionResult(name=self.name, text="noted")


class NotePlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions) -> None:  # type: ignore[no-untyped-def]
        actions.add("NOTE", Note)


@pytest.fixture
def make_host() -> Callable[..., PluginHost]:
    """A fresh host without autoload: the builtins, NOTE, and the given plugins."""

    def make(**plugins: object) -> PluginHost:
        host = PluginHost(
            autoload=False,
            settings=CarrierSettings(model_retry_initial_s=0.001, _env_file=None),
        )
        host.register(NotePlugin(), name="note")
        for name, plugin in plugins.items():
            host.register(plugin, name=name)
        return host

    return make


@pytest.fixture
def make_agent() -> Callable[..., AgentRuntime]:
    """Ada on an in-memory store, ``model`` for the small and large classes."""

    def make(host: PluginHost, model: Model | str, **models: Model | str | None) -> AgentRuntime:
        return AgentRuntime(
            Character(name="Ada", bio=["A careful test agent."]),
            host=host,
            store=InMemoryStore(),
            models={"large": model, "small": model, "embedding": None, **models},
        )

    return make
