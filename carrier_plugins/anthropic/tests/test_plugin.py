"""The plugin, registered in-process, through the real ``anthropic`` SDK against a
local server on 127.0.0.1 answering Messages-API-shaped bodies and SSE streams."""

from __future__ import annotations

import logging
from typing import Any

import carrier_plugin_anthropic.plugin
import pytest
from anthropic_fakes import (
    FakeServer,
    Recorded,
    Reply,
    error_body,
    message,
    text_stream,
    tool_stream,
)
from pydantic import BaseModel

from carrier import ConfigurationError, ModelRejectedError, PluginHost, TransientModelError
from carrier.types import ActionSpec, ChatMessage, ModelClass, ModelRequest

KEY = "sk-ant-api03-test-key-0123456789abcdef"


class Weather(BaseModel):
    city: str


def hello(**kwargs: Any) -> ModelRequest:
    return ModelRequest(
        system="You are Testy.",
        messages=[ChatMessage(role="user", content="Say hello.")],
        max_tokens=16,
        **kwargs,
    )


@pytest.fixture
def anthropic_host(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CARRIER_ANTHROPIC_API_KEY", KEY)
    host.register(carrier_plugin_anthropic.plugin, name="anthropic")
    return host


async def _generate(
    host: PluginHost, reply: Reply, request: ModelRequest | None = None, **options: Any
) -> tuple[Any, FakeServer]:
    async with FakeServer(lambda r: reply) as server:
        model = host.models.create("anthropic", base_url=server.url, **options)
        try:
            return await model.generate(request or hello()), server
        finally:
            await model.aclose()


async def test_text(anthropic_host: PluginHost) -> None:
    response, server = await _generate(anthropic_host, Reply(json=message("Hi there!")))
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.json["system"] == [
        {"type": "text", "text": "You are Testy.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent.json["max_tokens"] == 16
    assert sent.json["model"] == "claude-sonnet-4-5"
    assert response.text == "Hi there!"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (25, 9)
    assert response.model == "claude-sonnet-4-5-20250929"


async def test_tool_use_comes_back_as_action_calls(anthropic_host: PluginHost) -> None:
    body = message(
        "Checking.", tool_use=[("toolu_1", "GET_WEATHER", {"city": "Oslo"})], stop_reason="tool_use"
    )
    request = hello(
        actions=[
            ActionSpec(
                name="GET_WEATHER", description="Weather", parameters=Weather.model_json_schema()
            )
        ]
    )
    response, server = await _generate(anthropic_host, Reply(json=body), request)
    assert server.requests[0].json["tools"][0]["name"] == "GET_WEATHER"
    assert server.requests[0].json["tools"][0]["input_schema"]["required"] == ["city"]
    assert response.action_calls[0].name == "GET_WEATHER"
    assert response.action_calls[0].arguments == {"city": "Oslo"}


async def test_structured_output(anthropic_host: PluginHost) -> None:
    body = message(
        None, tool_use=[("toolu_2", "Weather", {"city": "Rome"})], stop_reason="tool_use"
    )
    request = hello(response_schema=Weather.model_json_schema())
    response, server = await _generate(anthropic_host, Reply(json=body), request)
    assert server.requests[0].json["tool_choice"] == {"type": "tool", "name": "Weather"}
    assert Weather.model_validate(response.structured) == Weather(city="Rome")


async def test_streamed_text(anthropic_host: PluginHost) -> None:
    async with FakeServer(lambda r: Reply(sse=text_stream("Hel", "lo", "!"))) as server:
        model = anthropic_host.models.create("anthropic", base_url=server.url)
        try:
            pieces = [p async for p in model.stream(hello())]
        finally:
            await model.aclose()
    assert server.requests[0].json["stream"] is True
    assert [p.text for p in pieces if p.text] == ["Hel", "lo", "!"]
    final = pieces[-1].response
    assert final is not None
    assert final.text == "Hello!"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 15)


async def test_streamed_tool_use(anthropic_host: PluginHost) -> None:
    events = tool_stream("GET_WEATHER", ['{"city"', ': "Paris"}'])
    async with FakeServer(lambda r: Reply(sse=events)) as server:
        model = anthropic_host.models.create("anthropic", base_url=server.url)
        try:
            pieces = [p async for p in model.stream(hello())]
        finally:
            await model.aclose()
    final = pieces[-1].response
    assert final is not None
    assert final.text == "Let me check."
    assert final.action_calls[0].arguments == {"city": "Paris"}
    assert final.usage.output_tokens == 89


async def test_overload_inside_a_stream_is_transient(anthropic_host: PluginHost) -> None:
    events = [*text_stream("Hi")[:4], ("error", error_body("overloaded_error", "Overloaded"))]
    async with FakeServer(lambda r: Reply(sse=events)) as server:
        model = anthropic_host.models.create("anthropic", base_url=server.url)
        try:
            with pytest.raises(TransientModelError, match="overloaded"):
                [p async for p in model.stream(hello())]
        finally:
            await model.aclose()


def _error(status: int, type_: str, **headers: str) -> Reply:
    return Reply(status=status, json=error_body(type_, "Something happened."), headers=headers)


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (_error(429, "rate_limit_error", **{"retry-after": "3"}), TransientModelError, 3.0),
        (_error(529, "overloaded_error"), TransientModelError, None),
        (_error(500, "api_error"), TransientModelError, None),
        (Reply(drop=True), TransientModelError, None),
        (_error(400, "invalid_request_error"), ModelRejectedError, None),
        (_error(401, "authentication_error"), ModelRejectedError, None),
        (_error(404, "not_found_error"), ModelRejectedError, None),
        (
            Reply(body=b"<html>oops", headers={"content-type": "application/json"}),
            ModelRejectedError,
            None,
        ),
        (Reply(json={"type": "message"}), ModelRejectedError, None),
    ],
)
async def test_failures_are_translated(
    anthropic_host: PluginHost,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as caught:
        _, _server = await _generate(anthropic_host, reply)
    assert caught.value.__cause__ is not None
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text
    if retry_after is not None:
        assert isinstance(caught.value, TransientModelError)
        assert caught.value.retry_after == retry_after


async def test_the_sdk_never_retries(anthropic_host: PluginHost) -> None:
    seen: list[Recorded] = []

    def handler(request: Recorded) -> Reply:
        seen.append(request)
        return _error(529, "overloaded_error")

    async with FakeServer(handler) as server:
        model = anthropic_host.models.create("anthropic", base_url=server.url)
        try:
            with pytest.raises(TransientModelError):
                await model.generate(hello())
        finally:
            await model.aclose()
    assert len(seen) == 1


def test_missing_key_is_a_configuration_error(host: PluginHost) -> None:
    host.register(carrier_plugin_anthropic.plugin, name="anthropic")
    with pytest.raises(ConfigurationError, match="CARRIER_ANTHROPIC_API_KEY"):
        host.models.create("anthropic")


def test_sdk_variable_is_a_fallback(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    host.register(carrier_plugin_anthropic.plugin, name="anthropic")
    model = host.models.create("anthropic", model="small")
    assert model.name == "anthropic:claude-haiku-4-5"
    assert KEY not in repr(model.settings)


async def test_model_classes(anthropic_host: PluginHost) -> None:
    async with FakeServer(lambda r: Reply(json=message("ok"))) as server:
        follows = anthropic_host.models.create("anthropic", base_url=server.url)
        pinned = anthropic_host.models.create(
            "anthropic", base_url=server.url, model="claude-opus-4-1"
        )
        try:
            await follows.generate(hello(model_class=ModelClass.SMALL))
            await follows.generate(hello(model_class=ModelClass.LARGE))
            await pinned.generate(hello(model_class=ModelClass.SMALL))
        finally:
            await follows.aclose()
            await pinned.aclose()
    assert [r.json["model"] for r in server.requests] == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
    ]
