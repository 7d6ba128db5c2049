"""Pure Carrier ↔ OpenAI mapping: no server, no client."""

from __future__ import annotations

import re

import pytest
from carrier_plugin_openai._convert import (
    NO_STOP_MODELS,
    StreamAccumulator,
    choose_stops,
    from_completion,
    parse_retry_after,
    redact,
    rejects_stop,
    to_messages,
    to_params,
    to_response_format,
    to_tools,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai_fakes import chunk, completion, tool_call
from pydantic import BaseModel, Field

from carrier import ModelRejectedError
from carrier.types import ActionSpec, ChatMessage, ModelRequest


class Weather(BaseModel):
    """Arguments of GET_WEATHER."""

    city: str = Field(description="City name")
    days: int = 1


REQUEST = ModelRequest(
    system="You are Testy.",
    messages=[
        ChatMessage(role="user", content="Weather in Oslo?", name="Ada Lovelace"),
        ChatMessage(role="assistant", content="Checking."),
        ChatMessage(role="tool", content="Sunny.", name="GET_WEATHER"),
    ],
    actions=[
        ActionSpec(
            name="GET_WEATHER", description="Weather", parameters=Weather.model_json_schema()
        )
    ],
    temperature=0.2,
    max_tokens=50,
    stop=["\n\n"],
    seed=7,
)


def test_messages_put_the_system_prompt_first_and_sanitize_names() -> None:
    messages = to_messages(REQUEST)
    assert messages[0] == {"role": "system", "content": "You are Testy."}
    assert messages[1] == {"role": "user", "content": "Weather in Oslo?", "name": "Ada_Lovelace"}
    assert messages[2] == {"role": "assistant", "content": "Checking."}
    assert messages[3] == {"role": "user", "content": "Result of action GET_WEATHER:\nSunny."}


def test_action_parameters_become_function_tools() -> None:
    (tool,) = to_tools(REQUEST.actions)
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "GET_WEATHER"
    assert tool["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert tool["function"]["parameters"]["required"] == ["city"]
    assert to_tools([ActionSpec(name="NONE", parameters={})])[0]["function"]["parameters"] == {
        "type": "object",
        "properties": {},
    }


def test_params_carry_every_option() -> None:
    params = to_params(REQUEST, model="m", default_max_tokens=9, max_tokens_key="max_tokens")
    assert params["model"] == "m"
    assert params["max_tokens"] == 50
    assert params["temperature"] == 0.2
    assert params["stop"] == ["\n\n"]
    assert params["seed"] == 7
    assert params["tool_choice"] == "auto"
    assert "response_format" not in params
    bare = to_params(
        ModelRequest(), model="m", default_max_tokens=9, max_tokens_key="max_completion_tokens"
    )
    assert bare["max_completion_tokens"] == 9
    assert not {"tools", "temperature", "stop", "seed"} & set(bare)


def test_response_schema_becomes_a_json_schema_format() -> None:
    fmt = to_response_format(Weather.model_json_schema())
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["schema"]["required"] == ["city"]


def test_completion_maps_text_usage_and_tool_calls() -> None:
    body = completion(
        None,
        tool_calls=[tool_call("GET_WEATHER", '{"city": "Oslo"}')],
        finish_reason="tool_calls",
    )
    response = from_completion(ChatCompletion.model_validate(body), name="n", request=REQUEST)
    assert response.text == ""
    assert response.action_calls[0].name == "GET_WEATHER"
    assert response.action_calls[0].arguments == {"city": "Oslo"}
    assert response.action_calls[0].id == "call_abc123"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.finish_reason == "tool_calls"
    assert response.model == "gpt-4.1-mini-2025-04-14"


def test_structured_output_is_parsed_when_asked() -> None:
    request = ModelRequest(response_schema=Weather.model_json_schema())
    body = ChatCompletion.model_validate(completion('{"city": "Oslo", "days": 2}'))
    assert from_completion(body, name="n", request=request).structured == {
        "city": "Oslo",
        "days": 2,
    }
    broken = ChatCompletion.model_validate(completion("not json"))
    assert from_completion(broken, name="n", request=request).structured is None
    assert from_completion(body, name="n", request=ModelRequest()).structured is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (completion(None, tool_calls=[tool_call("X", "{oops")]), "not JSON"),
        (completion(None, tool_calls=[tool_call("X", "[1]")]), "list arguments"),
        (completion("", finish_reason="content_filter"), "content_filter"),
        ({**completion(), "choices": []}, "no choices"),
    ],
)
def test_unusable_completions_are_rejected(body: dict[str, object], match: str) -> None:
    with pytest.raises(ModelRejectedError, match=match):
        from_completion(ChatCompletion.model_validate(body), name="n", request=REQUEST)


def test_stream_accumulator_joins_text_tool_calls_and_usage() -> None:
    acc = StreamAccumulator(name="n", request=REQUEST)
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}),
        chunk({"content": "check."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "GET_WEATHER", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, finish_reason="tool_calls"),
        chunk(usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ]
    deltas = [acc.add(ChatCompletionChunk.model_validate(c)) for c in chunks]
    assert "".join(deltas) == "Let me check."
    response = acc.response()
    assert response.text == "Let me check."
    assert response.action_calls[0].arguments == {"city": "Oslo"}
    assert response.action_calls[0].id == "call_1"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)
    assert response.finish_reason == "tool_calls"


def test_retry_after_headers() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_redact_masks_the_key_and_key_like_text() -> None:
    text = "Incorrect API key provided: sk-proj-abc***********xyz. Also sk-live-123456789"
    assert "sk-" not in redact(text, None)
    assert redact("key=hunter2-secret!", "hunter2-secret") == "key=***!"


def _room(*lines: str, system: str = "You are Testy.", stop: list[str]) -> ModelRequest:
    messages = [
        ChatMessage(role="assistant", content=line[1:])
        if line.startswith(">")
        else ChatMessage(role="user", content=line)
        for line in lines
    ]
    return ModelRequest(system=system, messages=messages, stop=stop)


def test_stop_sequences_keep_the_agent_and_the_latest_speakers() -> None:
    names = ("Ada", "Bob", "Cyd", "Dee", "Eve", "Testy", "User")
    stop = [f"\n{name}:" for name in names]
    request = _room("Bob: hi", "Ada: hello", ">Hi both.", "Dee: me too", "Ada: ok", stop=stop)
    # Testy (the agent), then Ada, Dee, Bob (latest first); kept in the request's order.
    assert choose_stops(request) == ["\nAda:", "\nBob:", "\nDee:", "\nTesty:"]
    assert choose_stops(request, limit=2) == ["\nAda:", "\nTesty:"]
    assert choose_stops(request, limit=7) == stop
    # A persona with a bio names the agent "About Testy:" too.
    bio = _room("Bob: hi", system="You are Tessa. About Testy: a bot.", stop=stop)
    assert choose_stops(bio, limit=2) == ["\nBob:", "\nTesty:"]


def test_stop_sequences_a_caller_asked_for_come_first() -> None:
    stop = ["\nAda:", "\nBob:", "\nCyd:", "\n\n", "\nTesty:", "END"]
    request = _room("Cyd: hi", stop=[*stop, "END", ""])
    assert choose_stops(request) == ["\nCyd:", "\n\n", "\nTesty:", "END"]
    assert choose_stops(ModelRequest(stop=["\n\n", "\n\n"])) == ["\n\n"]


@pytest.mark.parametrize(
    ("model", "rejects"),
    [
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini-2025-04-16", True),
        ("gpt-5", True),
        ("GPT-5-mini", True),
        ("openai/o3", True),
        ("gpt-4.1-mini", False),
        ("gpt-4o", False),
        ("llama3-o1-distill", False),
        ("qwen2.5-7b-instruct", False),
    ],
)
def test_reasoning_models_reject_stop(model: str, rejects: bool) -> None:
    patterns = [re.compile(p, re.IGNORECASE) for p in NO_STOP_MODELS]
    assert rejects_stop(model, patterns) is rejects
    params = to_params(
        _room(stop=["\nAda:"]), model=model, default_max_tokens=9, no_stop_models=patterns
    )
    assert ("stop" in params) is not rejects


def test_cached_and_reasoning_tokens_are_reported() -> None:
    body = completion("Hi.")
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 8, "audio_tokens": 0}
    body["usage"]["completion_tokens_details"] = {"reasoning_tokens": 3}
    usage = from_completion(ChatCompletion.model_validate(body), name="n", request=REQUEST).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (12, 8)
    assert usage.reasoning_output_tokens == 3
    plain = completion("Hi.")
    usage = from_completion(ChatCompletion.model_validate(plain), name="n", request=REQUEST).usage
    assert usage.cache_read_input_tokens is None  # not reported: unknown, not zero
