"""Broken model answers — an unknown action, invalid arguments, broken JSON — are
handled without crashing, and logged."""

from __future__ import annotations

from collections.abc import Callable

from carrier.prompts import parse_action_response
from carrier.runtime import AgentRuntime
from carrier.testing import EventRecorder, FakeModel, prompt_text
from carrier.types import EventType, IncomingMessage, Role

Say = Callable[..., IncomingMessage]


async def test_an_unknown_action_is_logged_and_the_text_still_sent(
    agent: AgentRuntime, fake_model: FakeModel, say: Say, events: EventRecorder
) -> None:
    fake_model.queue("On my way.", actions=[("FLY_TO_THE_MOON", {"speed": 9})])
    reply = await agent.handle(say("go"))
    assert reply.error is None
    assert reply.texts == ["On my way."]
    (result,) = reply.action_results
    assert "'FLY_TO_THE_MOON', which is not offered here" in (result.error or "")
    logs = await agent.store.get_logs(agent_id=agent.agent_id)
    assert logs[-1]["type"] == "action_failed"
    assert logs[-1]["body"]["action"] == "FLY_TO_THE_MOON"
    assert events.of(EventType.ACTION_FAILED)[0].data["action"] == "FLY_TO_THE_MOON"


async def test_invalid_arguments_let_the_model_retry(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("", actions=[("SEND_MESSAGE", {"text": 5, "room_id": "dm-ada"})])
    fake_model.queue("Sent.", actions=[("SEND_MESSAGE", {"text": "5", "room_id": "dm-ada"})])
    reply = await agent.handle(say("send five here", role=Role.OWNER))
    first, second = reply.action_results
    assert "text: Input should be a valid string" in (first.error or "")
    assert second.success
    assert "Invalid arguments" in prompt_text(fake_model.requests[1])
    logs = await agent.store.get_logs(agent_id=agent.agent_id)
    assert any("Invalid arguments" in log["body"]["error"] for log in logs)


async def test_broken_json_becomes_a_plain_reply(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    broken = '{"text": "Hi!", "actions": [{"name": "MUTE_ROOM", "arguments": {'
    fake_model.queue(response=parse_action_response(broken, model="fake"))
    reply = await agent.handle(say("hello"))
    assert reply.error is None
    assert reply.texts == [broken]
    assert reply.action_results == []


async def test_a_failing_model_leaves_the_message_for_recovery(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    from carrier.errors import ModelRejectedError

    fake_model.queue(error=ModelRejectedError("bad request"))
    reply = await agent.handle(say("hello"))
    assert reply.error is not None
    fake_model.queue("Back.")
    (recovered,) = await agent.recover()
    assert recovered.texts == ["Back."]
