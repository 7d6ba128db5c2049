"""The plugin registered in-process: what it offers, and a turn through the loop."""

from __future__ import annotations

from carrier_plugin_bootstrap import plugin

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.types import IncomingMessage

ACTIONS = [
    "CONTINUE",
    "FOLLOW_ROOM",
    "IGNORE",
    "MUTE_ROOM",
    "NONE",
    "REPLY",
    "SCHEDULE_TASK",
    "SEND_MESSAGE",
    "UNFOLLOW_ROOM",
    "UNMUTE_ROOM",
    "UPDATE_GOAL",
]


def test_registers_actions_providers_evaluators_and_command(host: PluginHost) -> None:
    host.register(plugin, name="bootstrap")
    assert host.actions.names() == ACTIONS
    assert host.providers.names() == [
        "actions",
        "attachments",
        "character",
        "entities",
        "goals",
        "knowledge",
        "reflection",
        "relevant_memories",
        "sender_facts",
        "time",
    ]
    assert host.evaluators.names() == ["facts", "goals", "reflection"]
    assert "knowledge" in host.commands
    assert host.task_workers.names() == ["follow_up", "goal"]
    assert host.settings.namespaces() == ["bootstrap"]


def test_every_action_is_documented(host: PluginHost) -> None:
    host.register(plugin, name="bootstrap")
    for entry in host.actions:
        action = entry.factory()
        assert action.description, action.name
        assert action.similes, action.name
        assert action.examples, action.name
        assert action.parameters is not None, action.name
        assert action.spec().parameters["type"] == "object"


async def test_a_turn_carries_the_sections_into_the_prompt(
    host: PluginHost, character: Character
) -> None:
    host.register(plugin, name="bootstrap")
    model = FakeModel()
    model.queue("Hello Ada!", actions=["REPLY"])
    async with AgentRuntime(
        character, host=host, models={"large": model, "small": model, "embedding": None}
    ) as runtime:
        reply = await runtime.handle(IncomingMessage(text="hello", user_id="ada", user_name="Ada"))
    assert reply.texts == ["Hello Ada!"]
    assert [r.name for r in reply.action_results] == ["REPLY"]
    system = prompt_text(model.requests[0])
    assert "The current date and time is" in system
    assert "id ada" not in system  # a direct chat: no room/entities block, no id
    assert "- REPLY: Reply to the current message." in system
    offered = {a.name for a in model.requests[0].actions}
    assert {"REPLY", "IGNORE", "NONE", "CONTINUE"} <= offered
    assert "SEND_MESSAGE" not in offered  # admins only
    assert "UPDATE_GOAL" not in offered  # no open goal
