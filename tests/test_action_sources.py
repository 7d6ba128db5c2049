"""Action sources: actions that come and go while the agent runs (carrier.ActionSource)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel

import carrier
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Action, ActionSource
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import ActionResult, IncomingMessage, Memory, Role, State


class Args(BaseModel):
    text: str


class Shout(Action):
    name = "SHOUT"
    description = "Shout a text."
    parameters = Args

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, Args)
        return ActionResult(name=self.name, text=arguments.text.upper())


class Reboot(Action):
    name = "REBOOT"
    description = "Reboot the machine."
    required_role = Role.ADMIN

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, text="rebooting")


class Registered(Action):
    name = "SHOUT"  # a registered action of the same name as a dynamic one
    description = "The registered shout."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, text="registered")


class Tools(ActionSource):
    name = "tools"

    def __init__(self) -> None:
        self.current: list[Action] = []
        self.calls = 0
        self.lifecycle: list[str] = []

    async def setup(self, runtime: AgentRuntime) -> None:
        self.lifecycle.append("setup")

    def set(self, *actions: Action) -> None:
        self.current = list(actions)
        self.version += 1

    def actions(self) -> Sequence[Action]:
        self.calls += 1
        return self.current

    async def aclose(self) -> None:
        self.lifecycle.append("aclose")


class ToolsPlugin:
    @carrier.hookimpl
    def carrier_register_action_sources(
        self, action_sources: carrier.Registry[ActionSource]
    ) -> None:
        action_sources.add("tools", Tools, description="Test tools.")


class RegisteredPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: carrier.Registry[Action]) -> None:
        actions.add("SHOUT", Registered)


def msg(text: str, **fields: object) -> IncomingMessage:
    values: dict[str, object] = {"user_id": "alice", "room_id": "r1"}
    values.update(fields)
    return IncomingMessage(text=text, **values)  # type: ignore[arg-type]


@pytest.fixture
async def agent(host: PluginHost, character: Character, fake_model: FakeModel):
    host.register(ToolsPlugin(), name="tools")
    async with AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": fake_model, "small": fake_model, "embedding": None},
    ) as runtime:
        yield runtime


def tools_of(agent: AgentRuntime) -> Tools:
    (source,) = agent.actions.sources
    assert isinstance(source, Tools)
    return source


async def test_the_registry_lists_the_source(host: PluginHost) -> None:
    host.register(ToolsPlugin(), name="tools")
    assert host.action_sources.names() == ["tools"]


async def test_an_action_added_while_running_is_offered_and_runs(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    tools = tools_of(agent)
    assert tools.lifecycle == ["setup"]
    fake_model.queue("Nothing to call.")
    await agent.handle(msg("hello"))
    assert fake_model.requests[-1].actions == [] or all(
        a.name != "SHOUT" for a in fake_model.requests[-1].actions
    )
    tools.set(Shout())
    fake_model.queue("Shouting.", actions=[("SHOUT", {"text": "hi"})])
    reply = await agent.handle(msg("shout hi"))
    offered = {spec.name: spec for spec in fake_model.requests[-1].actions}
    assert offered["SHOUT"].parameters["properties"]["text"]["type"] == "string"
    assert reply.action_results[0].text == "HI"


async def test_an_unchanged_source_is_not_asked_again(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    tools = tools_of(agent)
    tools.set(Shout())
    fake_model.queue("One.", times=3)
    await agent.handle(msg("one"))
    asked = tools.calls
    await agent.handle(msg("two"))
    await agent.handle(msg("three"))
    assert tools.calls == asked


async def test_a_removed_action_is_refused(agent: AgentRuntime, fake_model: FakeModel) -> None:
    tools = tools_of(agent)
    tools.set(Shout())
    tools.set()
    fake_model.queue("Shouting.", actions=[("SHOUT", {"text": "hi"})])
    reply = await agent.handle(msg("shout"))
    assert not reply.action_results[0].success
    assert "not offered" in (reply.action_results[0].error or "")


async def test_dynamic_actions_keep_their_role_requirement(
    agent: AgentRuntime, fake_model: FakeModel
) -> None:
    tools_of(agent).set(Reboot())
    fake_model.queue("Rebooting.", actions=["REBOOT"])
    reply = await agent.handle(msg("reboot", role=Role.MEMBER))
    assert not reply.action_results[0].success
    assert "REBOOT" not in {spec.name for spec in fake_model.requests[-1].actions}
    fake_model.queue("Rebooting.", actions=["REBOOT"])
    reply = await agent.handle(msg("reboot", user_id="root", room_id="r2", role=Role.ADMIN))
    assert reply.action_results[0].text == "rebooting"


async def test_a_registered_name_wins_over_a_dynamic_one(
    host: PluginHost, character: Character, fake_model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    host.register(RegisteredPlugin(), name="registered")
    host.register(ToolsPlugin(), name="tools")
    async with AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": fake_model, "small": fake_model, "embedding": None},
    ) as agent:
        tools_of(agent).set(Shout())
        fake_model.queue("Shouting.", actions=[("SHOUT", {"text": "hi"})])
        reply = await agent.handle(msg("shout"))
    assert reply.action_results[0].text == "registered"
    assert "a name already taken" in caplog.text


async def test_sources_are_closed_when_the_runtime_stops(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> None:
    host.register(ToolsPlugin(), name="tools")
    agent = AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": fake_model, "embedding": None},
    )
    async with agent:
        tools = tools_of(agent)
    assert tools.lifecycle == ["setup", "aclose"]
