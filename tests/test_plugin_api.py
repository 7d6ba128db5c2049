"""The plugin-facing API: ``runtime.plugin_settings`` (per-agent settings with the
character's overrides) and ``runtime.plugin_state`` (namespaced, atomic state)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.errors import ConfigurationError, InputError, PluginContractError, StoreError
from carrier.protocols import Action
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FunctionModel
from carrier.types import ActionCall, ActionResult, Memory, ModelRequest, ModelResponse, State


class WeatherSettings(BaseSettings):
    """No env_prefix: the kernel applies ``CARRIER_WEATHER_``."""

    units: str = "metric"
    max_days: int = 3


class PrefixedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEATHERAPP_")

    units: str = "metric"


class ForecastArgs(BaseModel):
    city: str


class ForecastAction(Action):
    """Reads its plugin's settings and counts its calls per agent."""

    name = "FORECAST"
    description = "The forecast for a city."
    parameters = ForecastArgs

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, ForecastArgs)
        settings = runtime.plugin_settings("weather", WeatherSettings)
        calls = await runtime.plugin_state("weather").increment("calls")
        return ActionResult(
            name=self.name, text=f"{arguments.city}: 20 degrees {settings.units} (call {calls})"
        )


class WeatherPlugin:
    @carrier.hookimpl
    def carrier_add_settings(self, settings: Any) -> None:
        settings.add("weather", WeatherSettings)

    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        actions.add("FORECAST", ForecastAction, description="The forecast for a city.")


def forecasting(request: ModelRequest) -> ModelResponse:
    """Asks for the forecast at the first step, then answers with what it returned."""
    if request.metadata.get("step") == 0 and request.actions:
        city = request.messages[-1].content.split()[-1]
        return ModelResponse(
            text="", action_calls=[ActionCall(name="FORECAST", arguments={"city": city})]
        )
    return ModelResponse(text="Here is your forecast.")


@pytest.fixture
def weather_host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.delenv("CARRIER_WEATHER_UNITS", raising=False)
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.register(WeatherPlugin(), name="weather")
    return host


def agent(host: PluginHost, name: str, store: InMemoryStore, **settings: Any) -> AgentRuntime:
    character = Character(name=name, bio=[f"{name} forecasts."], settings=settings)
    model = FunctionModel(forecasting)
    return AgentRuntime(
        character,
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )


# ---- settings -----------------------------------------------------------------------------


async def test_each_agent_reads_its_characters_override_over_the_environment(
    weather_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_WEATHER_UNITS", "kelvin")
    store = InMemoryStore()
    ada = agent(weather_host, "Ada", store, WEATHER_UNITS="imperial")
    bob = agent(weather_host, "Bob", store)
    async with ada, bob:
        a = await ada.handle(IncomingMessage(text="forecast for Oslo", user_id="u1", room_id="r1"))
        b = await bob.handle(IncomingMessage(text="forecast for Rome", user_id="u2", room_id="r2"))
        assert ada.plugin_settings("weather", WeatherSettings).units == "imperial"
        assert bob.plugin_settings("weather").units == "kelvin"
    assert [r.text for r in a.action_results] == ["Oslo: 20 degrees imperial (call 1)"]
    assert [r.text for r in b.action_results] == ["Rome: 20 degrees kelvin (call 1)"]


async def test_a_class_without_env_prefix_reads_carrier_namespace_variables(
    weather_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_WEATHER_MAX_DAYS", "7")
    runtime = agent(weather_host, "Ada", InMemoryStore())
    assert runtime.plugin_settings("weather", WeatherSettings).max_days == 7


def test_an_invalid_character_override_names_the_characters_setting(
    weather_host: PluginHost,
) -> None:
    runtime = agent(weather_host, "Ada", InMemoryStore(), WEATHER_MAX_DAYS="soon")
    with pytest.raises(ConfigurationError) as caught:
        runtime.plugin_settings("weather", WeatherSettings)
    message = str(caught.value)
    assert "WEATHER_MAX_DAYS of character 'Ada'" in message
    assert "found 'soon'" in message


def test_an_invalid_variable_names_the_variable(
    weather_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_WEATHER_MAX_DAYS", "many")
    runtime = agent(weather_host, "Ada", InMemoryStore())
    with pytest.raises(ConfigurationError, match=r"CARRIER_WEATHER_MAX_DAYS: .*found 'many'"):
        runtime.plugin_settings("weather")


def test_a_class_reading_another_prefix_is_a_contract_error() -> None:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.settings.add("weather", PrefixedSettings)
    runtime = agent(host, "Ada", InMemoryStore())
    with pytest.raises(PluginContractError, match=r"env_prefix 'WEATHERAPP_'.*CARRIER_WEATHER_"):
        runtime.plugin_settings("weather")


def test_a_plain_model_is_a_contract_error() -> None:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.settings.add("weather", ForecastArgs)
    runtime = agent(host, "Ada", InMemoryStore())
    with pytest.raises(PluginContractError, match="not a pydantic-settings BaseSettings"):
        runtime.plugin_settings("weather")


def test_an_undeclared_namespace_is_declared_by_the_class_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_WEATHER_UNITS", "imperial")
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    runtime = agent(host, "Ada", InMemoryStore())
    assert runtime.plugin_settings("weather", WeatherSettings).units == "imperial"


def test_settings_are_validated_once_per_runtime(weather_host: PluginHost) -> None:
    runtime = agent(weather_host, "Ada", InMemoryStore())
    assert runtime.plugin_settings("weather") is runtime.plugin_settings("weather")


# ---- state --------------------------------------------------------------------------------


async def test_state_is_kept_per_agent_and_per_namespace(weather_host: PluginHost) -> None:
    store = InMemoryStore()
    ada, bob = agent(weather_host, "Ada", store), agent(weather_host, "Bob", store)
    async with ada, bob:
        weather, other = ada.plugin_state("weather"), ada.plugin_state("other")
        await weather.set("last_city", "Oslo")
        assert await weather.get("last_city") == "Oslo"
        assert await other.get("last_city") is None
        assert await bob.plugin_state("weather").get("last_city", "none") == "none"
        assert await weather.items() == [("last_city", "Oslo")]
        assert await weather.delete("last_city") is True
        assert await weather.get("last_city") is None


async def test_state_operations_are_atomic(weather_host: PluginHost) -> None:
    async with agent(weather_host, "Ada", InMemoryStore()) as runtime:
        state = runtime.plugin_state("weather")
        assert await state.add("lock", {"by": "u1"}) is True
        assert await state.add("lock", {"by": "u2"}) is False
        assert await state.compare_and_set("lock", {"by": "u2"}, {"by": "u3"}) is False
        assert await state.compare_and_set("lock", {"by": "u1"}, None) is True
        assert await state.get("lock") is None
        counts = await asyncio.gather(*(state.increment("n") for _ in range(50)))
        assert sorted(counts) == list(range(1, 51))
        await state.set("word", "x")
        with pytest.raises(StoreError, match="not an integer"):
            await state.increment("word")


async def test_bad_namespaces_and_keys_are_refused(weather_host: PluginHost) -> None:
    async with agent(weather_host, "Ada", InMemoryStore()) as runtime:
        with pytest.raises(InputError, match="without ':'"):
            runtime.plugin_state("a:b")
        with pytest.raises(InputError, match="non-empty strings"):
            await runtime.plugin_state("weather").get("")


# ---- the documented surface -----------------------------------------------------------------


def test_every_public_name_of_the_runtime_is_documented() -> None:
    page = (Path(__file__).parents[1] / "docs" / "runtime-api.md").read_text()
    public = sorted(name for name in dir(AgentRuntime) if not name.startswith("_"))
    undocumented = [name for name in public if f"`{name}" not in page]
    assert not undocumented, f"add these to docs/runtime-api.md: {undocumented}"
