"""One message through a runtime gives the GenAI span tree a tracing tool shows."""

from __future__ import annotations

import asyncio
import json

from carrier_plugin_otel.testing import Telemetry
from opentelemetry.trace import SpanKind, StatusCode

from carrier.testing import FunctionModel
from carrier.types import ActionCall, IncomingMessage, ModelRequest, ModelResponse, Usage


def choosing_note(request: ModelRequest) -> ModelResponse:
    """Calls NOTE on the first step, then just answers; reports usage like a backend."""
    calls = []
    if request.actions and request.metadata.get("step") == 0:
        calls = [ActionCall(name="NOTE", arguments={"text": "buy milk"}, id="call-1")]
    return ModelResponse(
        text="Noted: buy milk.",
        action_calls=calls,
        usage=Usage(input_tokens=120, output_tokens=7),
        model="gpt-test-2024-01-01",
        finish_reason="tool_calls" if calls else "stop",
    )


async def test_one_message_gives_the_span_tree(telemetry: Telemetry, make_host, make_agent) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer())
    model = FunctionModel(choosing_note, name="openai:gpt-test")
    async with make_agent(host, model) as agent:
        reply = await agent.handle(
            IncomingMessage(
                text="remember to buy milk", user_id="u1", room_id="kitchen", source="telegram"
            )
        )
        await reply.evaluated()
    assert reply.texts == ["Noted: buy milk."]

    root = telemetry.span("invoke_agent Ada")
    chat = telemetry.span("chat gpt-test")
    tool = telemetry.span("execute_tool NOTE")
    assert root.parent is None
    assert root.kind is SpanKind.INTERNAL
    assert {s.context.trace_id for s in telemetry.spans()} == {root.context.trace_id}
    assert chat.parent is not None
    assert chat.parent.span_id == root.context.span_id
    assert tool.parent is not None
    assert tool.parent.span_id == root.context.span_id
    # the model answered before the action ran, both inside the message's span
    assert root.start_time <= chat.start_time < chat.end_time <= tool.start_time
    assert tool.end_time <= root.end_time

    assert root.attributes is not None
    assert dict(root.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "Ada",
        "gen_ai.agent.id": agent.agent_id,
        "gen_ai.conversation.id": "kitchen",
        "gen_ai.provider.name": "openai",
        "carrier.message.id": reply.message.id,
        "carrier.platform": "telegram",
        "carrier.room.type": "direct",
        "carrier.sender.role": "member",
        "carrier.message.new": True,
        "carrier.should_respond.decision": "respond",
        "carrier.should_respond.respond": True,
        "carrier.providers": 0,
        "carrier.responses": 1,
        "carrier.ignored": False,
    }
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-test"
    assert chat.attributes["gen_ai.response.model"] == "gpt-test-2024-01-01"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 120
    assert chat.attributes["gen_ai.usage.output_tokens"] == 7
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat.attributes["carrier.action_calls"] == ("NOTE",)
    assert chat.attributes["carrier.model.class"] == "large"
    assert tool.attributes is not None
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "NOTE",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call-1",
        "carrier.idempotency_key": f"{reply.message.id}:0:0",
        "carrier.action.success": True,
    }
    assert tool.status.status_code is StatusCode.UNSET

    # nothing anyone wrote is in the trace
    for span in telemetry.spans():
        for key, value in (span.attributes or {}).items():
            assert not key.endswith((".messages", ".arguments", ".result", "instructions"))
            assert "milk" not in str(value)


async def test_metrics_of_one_message(telemetry: Telemetry, make_host, make_agent) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(choosing_note, name="openai:gpt-test")) as agent:
        await agent.handle(IncomingMessage(text="remember to buy milk", room_id="kitchen"))

    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in telemetry.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 120, "output": 7}
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.response.model": "gpt-test-2024-01-01",
    }
    (tool,) = telemetry.points("gen_ai.execute_tool.duration")
    assert tool.count == 1
    assert tool.attributes["gen_ai.tool.name"] == "NOTE"
    (agent_time,) = telemetry.points("gen_ai.invoke_agent.duration")
    assert agent_time.count == 1
    assert agent_time.sum > 0


async def test_content_is_recorded_only_when_opted_in(
    telemetry: Telemetry, make_host, make_agent
) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer(capture_content=True))
    async with make_agent(host, FunctionModel(choosing_note, name="openai:gpt-test")) as agent:
        await agent.handle(IncomingMessage(text="remember to buy milk", room_id="kitchen"))

    root = telemetry.span("invoke_agent Ada").attributes or {}
    assert json.loads(str(root["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "remember to buy milk"}]}
    ]
    assert json.loads(str(root["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Noted: buy milk."}]}
    ]
    chat = telemetry.span("chat gpt-test").attributes or {}
    assert "Ada" in json.loads(str(chat["gen_ai.system_instructions"]))[0]["content"]
    inputs = json.loads(str(chat["gen_ai.input.messages"]))
    assert "remember to buy milk" in inputs[-1]["parts"][0]["content"]
    (output,) = json.loads(str(chat["gen_ai.output.messages"]))
    assert output["parts"][1] == {
        "type": "tool_call",
        "id": "call-1",
        "name": "NOTE",
        "arguments": {"text": "buy milk"},
    }
    assert [t["name"] for t in json.loads(str(chat["gen_ai.tool.definitions"]))] == ["NOTE"]
    tool = telemetry.span("execute_tool NOTE").attributes or {}
    assert json.loads(str(tool["gen_ai.tool.call.arguments"])) == {"text": "buy milk"}
    assert tool["gen_ai.tool.call.result"] == "noted"


async def test_two_rooms_at_once_give_two_traces(
    telemetry: Telemetry, make_host, make_agent
) -> None:  # type: ignore[no-untyped-def]
    async def slow(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(0.02)  # both messages are inside their model call together
        return choosing_note(request)

    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(slow, name="openai:gpt-test")) as agent:
        replies = await asyncio.gather(
            agent.handle(IncomingMessage(text="hi", user_id="ann", room_id="room-ann")),
            agent.handle(IncomingMessage(text="hello", user_id="bob", room_id="room-bob")),
        )
    assert all(r.texts for r in replies)

    roots = {
        s.attributes["gen_ai.conversation.id"]: s
        for s in telemetry.spans()
        if s.name == "invoke_agent Ada" and s.attributes
    }
    assert set(roots) == {"room-ann", "room-bob"}
    ann, bob = roots["room-ann"], roots["room-bob"]
    assert ann.context.trace_id != bob.context.trace_id
    # the two runs overlapped in time, yet each child sits in its own message's trace
    assert ann.start_time < bob.end_time
    assert bob.start_time < ann.end_time
    for root in (ann, bob):
        children = [s for s in telemetry.spans() if s.context.trace_id == root.context.trace_id]
        assert sorted(s.name for s in children) == [
            "chat gpt-test",
            "execute_tool NOTE",
            "invoke_agent Ada",
        ]
        for child in children:
            if child is not root:
                assert child.parent is not None
                assert child.parent.span_id == root.context.span_id


async def test_failed_action_is_an_error_span(telemetry: Telemetry, make_host, make_agent) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(choosing_note, name="openai:gpt-test")) as agent:
        await agent.handle(IncomingMessage(text="boom", room_id="kitchen"))

    tool = telemetry.span("execute_tool NOTE")
    assert tool.status.status_code is StatusCode.ERROR
    assert "the notebook is full" in str(tool.status.description)
    assert tool.attributes is not None
    assert tool.attributes["error.type"] == "carrier.action_failed"
    assert tool.attributes["carrier.action.success"] is False
    (point,) = telemetry.points("gen_ai.execute_tool.duration")
    assert point.attributes["error.type"] == "carrier.action_failed"


async def test_ignored_message_records_the_decision(
    telemetry: Telemetry, make_host, make_agent
) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(choosing_note, name="openai:gpt-test")) as agent:
        reply = await agent.handle(
            IncomingMessage(text="people chatting", room_id="lounge", room_type="group")
        )
    assert reply.ignored
    assert telemetry.names() == ["invoke_agent Ada"]
    root = telemetry.span("invoke_agent Ada").attributes or {}
    assert root["carrier.room.type"] == "group"
    assert root["carrier.should_respond.respond"] is False
    assert root["carrier.ignored"] is True


async def test_a_duplicate_message_ends_its_span(
    telemetry: Telemetry, make_host, make_agent
) -> None:  # type: ignore[no-untyped-def]
    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(choosing_note, name="openai:gpt-test")) as agent:
        incoming = IncomingMessage(text="hi", room_id="kitchen", message_id="m-1")
        await agent.handle(incoming)
        again = await agent.handle(incoming)
    assert again.duplicate
    roots = [s for s in telemetry.spans() if s.name == "invoke_agent Ada"]
    assert len(roots) == 2
    assert roots[1].attributes is not None
    assert roots[1].attributes["carrier.duplicate"] is True
    assert roots[1].attributes["carrier.message.new"] is False
