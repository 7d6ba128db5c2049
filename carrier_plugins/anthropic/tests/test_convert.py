"""Pure Carrier ↔ Anthropic mapping: no server, no client."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic_fakes import message, text_stream, tool_stream
from carrier_plugin_anthropic._convert import (
    StreamAccumulator,
    from_message,
    parse_retry_after,
    redact,
    to_messages,
    to_params,
    to_system,
    to_tools,
)
from pydantic import BaseModel, TypeAdapter

from carrier import ModelRejectedError
from carrier.types import ActionSpec, ChatMessage, ModelRequest


class Weather(BaseModel):
    city: str


REQUEST = ModelRequest(
    system="You are Testy.",
    messages=[
        ChatMessage(role="user", content="Hi."),
        ChatMessage(role="user", content="Weather in Oslo?"),
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="assistant", content="Checking."),
        ChatMessage(role="tool", content="Sunny.", name="GET_WEATHER"),
    ],
    actions=[
        ActionSpec(
            name="GET_WEATHER", description="Weather", parameters=Weather.model_json_schema()
        )
    ],
    temperature=0.1,
    stop=["END"],
)
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def test_system_and_alternating_turns() -> None:
    assert to_system(REQUEST) == "You are Testy.\n\nBe brief."
    assert to_messages(REQUEST) == [
        {"role": "user", "content": "Hi.\n\nWeather in Oslo?"},
        {"role": "assistant", "content": "Checking."},
        {"role": "user", "content": "Result of action GET_WEATHER:\nSunny."},
    ]
    assert to_messages(ModelRequest()) == [{"role": "user", "content": "Continue."}]


def test_params_and_tools() -> None:
    params = to_params(REQUEST, model="claude-x", default_max_tokens=64)
    assert params["model"] == "claude-x"
    assert params["max_tokens"] == 64
    assert params["system"] == "You are Testy.\n\nBe brief."
    assert params["stop_sequences"] == ["END"]
    assert params["temperature"] == 0.1
    assert params["tool_choice"] == {"type": "auto"}
    assert params["tools"] == to_tools(REQUEST.actions)
    assert params["tools"][0]["input_schema"]["required"] == ["city"]


def test_structured_output_forces_a_tool() -> None:
    request = ModelRequest(response_schema=Weather.model_json_schema())
    params = to_params(request, model="m", default_max_tokens=5)
    assert params["tool_choice"] == {"type": "tool", "name": "Weather"}
    body = Message.model_validate(message(None, tool_use=[("t1", "Weather", {"city": "Oslo"})]))
    response = from_message(body, name="n", request=request)
    assert response.structured == {"city": "Oslo"}
    assert response.action_calls == []
    assert response.text == '{"city": "Oslo"}'


def test_message_maps_text_tool_use_and_usage() -> None:
    body = message(
        "Let me check.",
        tool_use=[("toolu_1", "GET_WEATHER", {"city": "Oslo"})],
        stop_reason="tool_use",
    )
    response = from_message(Message.model_validate(body), name="n", request=REQUEST)
    assert response.text == "Let me check."
    assert response.action_calls[0].model_dump() == {
        "name": "GET_WEATHER",
        "arguments": {"city": "Oslo"},
        "id": "toolu_1",
    }
    assert (response.usage.input_tokens, response.usage.output_tokens) == (25, 9)
    assert response.finish_reason == "tool_use"


def test_refusal_is_rejected() -> None:
    body = Message.model_validate(message("", stop_reason="refusal"))
    with pytest.raises(ModelRejectedError, match="refusal"):
        from_message(body, name="n", request=REQUEST)


def _fold(events: list[Any]) -> tuple[str, StreamAccumulator]:
    acc = StreamAccumulator(name="n", request=REQUEST)
    text = "".join(acc.add(EVENTS.validate_python(data)) for name, data in events if name != "ping")
    return text, acc


def test_stream_accumulator_text() -> None:
    text, acc = _fold(text_stream("Hel", "lo!"))
    assert text == "Hello!"
    response = acc.response()
    assert response.text == "Hello!"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (25, 15)
    assert response.finish_reason == "end_turn"


def test_stream_accumulator_tool_use() -> None:
    _, acc = _fold(tool_stream("GET_WEATHER", ['{"ci', 'ty": "Ro', 'me"}']))
    response = acc.response()
    assert response.action_calls[0].arguments == {"city": "Rome"}
    assert response.action_calls[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert response.finish_reason == "tool_use"


def test_truncated_stream_is_rejected() -> None:
    _, acc = _fold(text_stream("Hi")[:-1])
    with pytest.raises(ModelRejectedError, match="message_stop"):
        acc.response()


def test_retry_after_and_redact() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "20"}) == 0.02
    assert parse_retry_after(None) is None
    assert "sk-ant" not in redact("bad key sk-ant-api03-abcdefgh", None)


def test_cached_prompt_tokens_count_in_the_input_and_are_reported() -> None:
    body = message("Hi.")
    body["usage"] = {
        "input_tokens": 5,
        "output_tokens": 9,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }
    usage = from_message(Message.model_validate(body), name="n", request=REQUEST).usage
    assert (usage.input_tokens, usage.output_tokens) == (125, 9)
    assert (usage.cache_read_input_tokens, usage.cache_write_input_tokens) == (100, 20)


def test_a_stream_keeps_the_cache_usage_of_message_start() -> None:
    events = text_stream("Hel", "lo!")
    _, start = events[0]
    start["message"]["usage"] = {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    }
    _, acc = _fold(events)
    usage = acc.response().usage
    assert (usage.input_tokens, usage.output_tokens) == (105, 15)
    assert (usage.cache_read_input_tokens, usage.cache_write_input_tokens) == (100, 0)


def test_cache_breakpoints_end_the_system_prompt_and_the_stable_prefix() -> None:
    history = [
        ChatMessage(role="user", content="Hi, I am Ada."),
        ChatMessage(role="assistant", content="Hello Ada."),
    ]
    request = ModelRequest(
        system="You are Testy.",
        messages=[*history, ChatMessage(role="user", content="It is noon.\n\nWhat now?")],
        metadata={"prefix_messages": 2},
    )
    params = to_params(request, model="claude-x", default_max_tokens=64, cache=True)
    marked = {"type": "ephemeral"}
    assert params["system"] == [{"type": "text", "text": "You are Testy.", "cache_control": marked}]
    assert params["messages"][1]["content"] == [
        {"type": "text", "text": "Hello Ada.", "cache_control": marked}
    ]
    assert params["messages"][2]["content"] == "It is noon.\n\nWhat now?"

    # a user turn the agent did not answer: the new one merges into it, after the mark
    merged = request.model_copy(update={"messages": [*history[:1], request.messages[-1]]})
    merged.metadata = {"prefix_messages": 1}
    params = to_params(merged, model="claude-x", default_max_tokens=64, cache=True)
    assert params["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi, I am Ada.", "cache_control": marked},
                {"type": "text", "text": "It is noon.\n\nWhat now?"},
            ],
        }
    ]
    # without cache (or without a stable prefix), plain strings as before
    assert to_params(request, model="claude-x", default_max_tokens=64)["system"] == "You are Testy."
    bare = to_params(ModelRequest(system="S"), model="x", default_max_tokens=8, cache=True)
    assert bare["messages"] == [{"role": "user", "content": "Continue."}]
