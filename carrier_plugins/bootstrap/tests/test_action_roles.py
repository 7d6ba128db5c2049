"""Role overrides (``CARRIER_BOOTSTRAP_ACTION_ROLES``, a character's ``BOOTSTRAP_ACTION_ROLES``):
applied to any action of the runtime, and a bad one stops the start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from carrier_plugin_bootstrap.config import settings_for
from carrier_plugin_sql.store import SqlStore
from pydantic import BaseModel

import carrier
from carrier.character import Character
from carrier.errors import ConfigurationError
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import ActionResult, IncomingMessage, Memory, Role, State

Say = Callable[..., IncomingMessage]


class WeatherAction(Action):
    """Another plugin's action, open to anyone by default."""

    name = "WEATHER"
    description = "Tell the weather."
    examples: ClassVar[list[list[dict[str, Any]]]] = []

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, text="Sunny.")


class WeatherPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Registry[Action]) -> None:
        actions.add("WEATHER", WeatherAction, description=WeatherAction.description)


def _runtime(
    host: PluginHost, character: Character, store: SqlStore, model: FakeModel
) -> AgentRuntime:
    return AgentRuntime(
        character,
        host=host,
        store=store,
        models={"large": model, "small": FakeModel(default_text="{}"), "embedding": None},
    )


def _with_settings(character: Character, **settings: Any) -> Character:
    return character.model_copy(update={"settings": {**character.settings, **settings}})


async def test_overrides_apply_to_any_action_of_the_runtime(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: SqlStore,
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap_host.register(WeatherPlugin(), name="weather")
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", '{"weather": "OWNER"}')
    model = FakeModel(default_text="ok")
    async with _runtime(bootstrap_host, character, sql_store, model) as agent:
        model.queue("Let me look.", actions=["WEATHER"])
        reply = await agent.handle(say("weather?"))
        assert not reply.action_results[0].success
        assert "WEATHER" not in {a.name for a in model.requests[0].actions}
        model.queue("Let me look.", actions=["WEATHER"])
        reply = await agent.handle(say("weather?", role=Role.OWNER))
        assert reply.action_results[0].text == "Sunny."


async def test_a_characters_overrides_win_over_the_environment(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: SqlStore,
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", '{"NONE": "owner"}')
    character = _with_settings(character, BOOTSTRAP_ACTION_ROLES={"NONE": None, "REPLY": "admin"})
    model = FakeModel(default_text="ok")
    async with _runtime(bootstrap_host, character, sql_store, model) as agent:
        await agent.handle(say("hi"))
        offered = {a.name for a in model.requests[0].actions}
        assert "NONE" in offered
        assert "REPLY" not in offered


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '{"FOLLOW_ROOM": "admn"}',
            "CARRIER_BOOTSTRAP_ACTION_ROLES: 'admn' (for FOLLOW_ROOM) is not a role; valid "
            "roles are 'owner', 'admin', 'member' or null (anyone)",
        ),
        (
            '{"FOLLOW_ROOM": "admn", "MUTE_ROOM": 3}',
            "CARRIER_BOOTSTRAP_ACTION_ROLES: 'admn' (for FOLLOW_ROOM), 3 (for MUTE_ROOM) are "
            "not roles; valid roles are 'owner', 'admin', 'member' or null (anyone)",
        ),
        (
            "{FOLLOW_ROOM: admin}",
            "CARRIER_BOOTSTRAP_ACTION_ROLES: '{FOLLOW_ROOM: admin}' is not valid JSON "
            "(Expecting property name enclosed in double quotes); write an object such as",
        ),
        (
            '["FOLLOW_ROOM"]',
            "CARRIER_BOOTSTRAP_ACTION_ROLES: expected an object mapping action names to "
            "roles, such as",
        ),
    ],
)
async def test_an_invalid_role_in_the_environment_is_a_configuration_error(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", value)
    agent = _runtime(bootstrap_host, character, sql_store, FakeModel())
    with pytest.raises(ConfigurationError) as caught:
        settings_for(agent)
    assert expected in str(caught.value)


async def test_an_invalid_role_in_the_character_names_the_characters_setting(
    bootstrap_host: PluginHost, character: Character, sql_store: SqlStore
) -> None:
    character = _with_settings(character, BOOTSTRAP_ACTION_ROLES={"MUTE_ROOM": "boss"})
    agent = _runtime(bootstrap_host, character, sql_store, FakeModel())
    with pytest.raises(ConfigurationError) as caught:
        settings_for(agent)
    assert str(caught.value) == (
        "Invalid BOOTSTRAP_ACTION_ROLES of character 'Testy': 'boss' (for MUTE_ROOM) is not "
        "a role; valid roles are 'owner', 'admin', 'member' or null (anyone)."
    )


# ---- end to end: the runtime does not start ------------------------------------------------


async def test_an_unknown_role_stops_the_start(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", '{"FOLLOW_ROOM": "admn"}')
    agent = _runtime(bootstrap_host, character, sql_store, FakeModel())
    with pytest.raises(ConfigurationError) as caught:
        await agent.start()
    assert "CARRIER_BOOTSTRAP_ACTION_ROLES: 'admn' (for FOLLOW_ROOM) is not a role" in str(
        caught.value
    )


async def test_an_unknown_action_stops_the_start(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap_host.register(WeatherPlugin(), name="weather")
    monkeypatch.setenv(
        "CARRIER_BOOTSTRAP_ACTION_ROLES", '{"FOLOW_ROOM": "owner", "WEATHER": "owner"}'
    )
    agent = _runtime(bootstrap_host, character, sql_store, FakeModel())
    with pytest.raises(ConfigurationError) as caught:
        await agent.start()
    assert str(caught.value) == (
        "CARRIER_BOOTSTRAP_ACTION_ROLES names an action this agent does not have: "
        "'FOLOW_ROOM' (did you mean 'FOLLOW_ROOM'?). Its actions are: CONTINUE, FOLLOW_ROOM, "
        "IGNORE, MUTE_ROOM, NONE, REPLY, SCHEDULE_TASK, SEND_MESSAGE, UNFOLLOW_ROOM, "
        "UNMUTE_ROOM, UPDATE_GOAL, WEATHER. Fix the name, or install the plugin that provides it."
    )


async def test_a_characters_unknown_action_stops_the_start_naming_its_setting(
    bootstrap_host: PluginHost, character: Character, sql_store: SqlStore
) -> None:
    character = _with_settings(character, bootstrap_action_roles='{"TWEET": "owner"}')
    agent = _runtime(bootstrap_host, character, sql_store, FakeModel())
    with pytest.raises(ConfigurationError) as caught:
        await agent.start()
    assert str(caught.value).startswith(
        "bootstrap_action_roles of character 'Testy' names an action this agent does not "
        "have: 'TWEET'. Its actions are: CONTINUE,"
    )
