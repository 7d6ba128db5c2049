"""PluginHost: in-process registration, registries, contracts, tracing, allow/block lists."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import carrier
from carrier.errors import PluginContractError, UnknownNameError
from carrier.host import PluginHost, PluginInfo
from carrier.settings import CarrierSettings
from carrier.types import RespondDecision


class _Models:
    def __init__(self, *names: str) -> None:
        self.names = names

    @carrier.hookimpl
    def carrier_register_models(self, models: Any) -> None:
        from carrier.builtin.echo_model import EchoModel

        for name in self.names:
            models.add(name, EchoModel, description=f"{name} backend")


def test_builtins_are_registered_and_overridable(host: PluginHost) -> None:
    assert host.models.names() == ["echo"]
    assert host.stores.names() == ["memory"]
    assert host.executors.names() == ["inprocess"]
    host.register(_Models("echo", "mine"), name="override")
    assert host.models.entry("echo").plugin == "override"  # a plugin beats a builtin
    assert host.models.names() == ["echo", "mine"]


def test_duplicate_names_name_both_distributions(host: PluginHost) -> None:
    host.register(
        _Models("claude"),
        name="anthropic",
        info=PluginInfo(name="anthropic", distribution="carrier-plugin-anthropic"),
    )
    host.register(
        _Models("claude"),
        name="copycat",
        info=PluginInfo(name="copycat", distribution="carrier-plugin-copycat"),
    )
    with pytest.raises(PluginContractError) as caught:
        host.models.names()
    message = str(caught.value)
    assert "Two plugins register a model named 'claude'" in message
    assert "carrier-plugin-anthropic" in message
    assert "carrier-plugin-copycat" in message
    assert "CARRIER_DISABLE_PLUGINS=copycat" in message


def test_unknown_names_suggest_and_print_the_install_command(host: PluginHost) -> None:
    host.register(_Models("anthropic-claude"), name="x")
    with pytest.raises(UnknownNameError, match="Did you mean 'anthropic-claude'"):
        host.models.entry("anthropic-claud")
    with pytest.raises(UnknownNameError) as caught:
        host.models.entry("openai")
    assert "No model named 'openai'. Install it with: pip install carrier-plugin-openai" in str(
        caught.value
    )
    with pytest.raises(UnknownNameError, match="pip install carrier-plugin-sql"):
        host.stores.entry("sqlite")
    assert not isinstance(UnknownNameError("model", "x", []), KeyError)


def test_register_rejects_bad_hook_signatures_and_unknown_hooks(host: PluginHost) -> None:
    class WrongArgs:
        @carrier.hookimpl
        def carrier_register_models(self, registry: Any) -> None: ...

    with pytest.raises(PluginContractError, match="invalid hook implementation"):
        host.register(WrongArgs(), name="wrong")

    class Typo:
        @carrier.hookimpl
        def carrier_register_modles(self, models: Any) -> None: ...

    host.register(Typo(), name="typo")
    with pytest.raises(PluginContractError, match="carrier_register_modles"):
        host.check_pending()
    host.unregister("typo")


def test_a_failing_register_hook_is_recorded_and_others_still_register(host: PluginHost) -> None:
    class Exploding:
        @carrier.hookimpl
        def carrier_register_models(self, models: Any) -> None:
            raise RuntimeError("boom")

    host.register(Exploding(), name="exploding")
    host.register(_Models("fine"), name="fine")
    assert "fine" in host.models.names()
    assert "boom" in str(host.load_errors[0])
    assert host.plugins["exploding"].error is not None


def test_async_choose_hook_is_a_contract_error(host: PluginHost, runtime: Any) -> None:
    class AsyncChooser:
        @carrier.hookimpl
        async def carrier_choose_executor(self, runtime: Any, available: Any) -> str:
            return "inprocess"

    host.register(AsyncChooser(), name="async-chooser")
    with pytest.raises(PluginContractError, match="must be plain 'def'"):
        host.choose("carrier_choose_executor", runtime=runtime, available=["inprocess"])


def test_choose_hook_first_non_none_wins(host: PluginHost, runtime: Any) -> None:
    from carrier.types import Memory, Room

    calls: list[str] = []

    class Defer:
        @carrier.hookimpl
        def carrier_choose_should_respond(self, runtime: Any, message: Any) -> None:
            calls.append("defer")
            return None

    class Never:
        @carrier.hookimpl(tryfirst=True)
        def carrier_choose_should_respond(self, room: Any) -> RespondDecision:
            return RespondDecision.IGNORE

    message = Memory(agent_id="a", entity_id="u", room_id="r")
    room = Room(id="r", agent_id="a")
    kwargs = {"runtime": runtime, "message": message, "room": room, "participant": None}
    host.register(Defer(), name="defer")
    # Defer answers None, so the builtin (trylast) decides: a direct room is answered.
    assert host.choose("carrier_choose_should_respond", **kwargs) is RespondDecision.RESPOND
    assert calls == ["defer"]
    host.register(Never(), name="never")
    assert host.choose("carrier_choose_should_respond", **kwargs) is RespondDecision.IGNORE
    assert calls == ["defer"]  # stopped at the first non-None answer


async def test_observers_may_be_async_and_a_failing_one_is_contained(host: PluginHost) -> None:
    from carrier.types import Event, EventType

    got: list[str] = []

    class Good:
        @carrier.hookimpl
        async def carrier_on_event(self, event: Event) -> None:
            got.append(f"async {event.type}")

    class Bad:
        @carrier.hookimpl
        def carrier_on_event(self, event: Event) -> None:
            raise RuntimeError("observer bug")

    host.register(Good(), name="good")
    host.register(Bad(), name="bad")
    await host.emit(Event(type=EventType.RUN_STARTED, agent_id="a"))
    assert got == ["async run_started"]


def test_tracing_logs_every_hook_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CARRIER_TRACE_PLUGINS", "1")
    traced = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None))
    with caplog.at_level(logging.INFO, logger="carrier.plugins"):
        traced.models.names()
        traced.choose("carrier_choose_executor", runtime=None, available=[])
    text = caplog.text
    assert "hook carrier_register_models -> carrier.builtin" in text
    assert "hook carrier_choose_executor(runtime, available)" in text


def test_allowlist_naming_a_missing_plugin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_PLUGINS", "no-such-plugin-xyz")
    with pytest.raises(
        UnknownNameError, match=r"No installed plugin .* named 'no-such-plugin-xyz'"
    ):
        PluginHost(settings=CarrierSettings(_env_file=None))


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "1")
    quiet = PluginHost(settings=CarrierSettings(_env_file=None))
    assert list(quiet.plugins) == ["carrier.builtin"]


def test_settings_registry_validates_lazily_and_hides_secrets(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import SecretStr
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class DemoSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="CARRIER_DEMO_")
        api_key: SecretStr
        timeout_s: float = 10.0

    class Demo:
        @carrier.hookimpl
        def carrier_add_settings(self, settings: Any) -> None:
            settings.add("demo", DemoSettings)

    host.register(Demo(), name="demo")  # historic: called on registration
    assert "demo" in host.settings.namespaces()
    monkeypatch.setenv("CARRIER_DEMO_TIMEOUT_S", "soon")
    monkeypatch.setenv("CARRIER_DEMO_API_KEY", "sk-very-secret")
    with pytest.raises(carrier.ConfigurationError) as caught:
        host.settings.get("demo")
    message = str(caught.value)
    assert "CARRIER_DEMO_TIMEOUT_S: Input should be a valid number" in message
    assert "sk-very-secret" not in message
    monkeypatch.setenv("CARRIER_DEMO_TIMEOUT_S", "3")
    value = host.settings.get("demo")
    assert value.timeout_s == 3.0
    assert "sk-very-secret" not in repr(value)
