"""The plugin, registered in-process, through the real ``openai`` SDK.

Chat, streaming, structured output and embeddings go to llama.cpp's real
OpenAI-compatible server (xllamacpp serving SmolLM2-135M on 127.0.0.1). That server
never emits ``tool_calls`` for SmolLM2, so tool calling and HTTP failures go to a
scripted server on 127.0.0.1 answering OpenAI-documented bodies.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import carrier_plugin_openai.plugin
import httpx
import pytest
from carrier_plugin_openai.settings import OpenAISettings
from openai_fakes import (
    LLAMA_KEY,
    FakeServer,
    Recorded,
    Reply,
    chunk,
    completion,
    error_body,
    openai_rules,
    tool_call,
)
from pydantic import BaseModel, ValidationError

from carrier import (
    AgentRuntime,
    ConfigurationError,
    IncomingMessage,
    ModelRejectedError,
    PluginHost,
    TransientModelError,
)
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.types import ActionSpec, ChatMessage, EventType, ModelClass, ModelRequest

FAKE_KEY = "sk-fake-key-for-tests-0123456789"


class Person(BaseModel):
    name: str
    age: int


def hello(max_tokens: int = 8, **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        system="You are a helpful assistant.",
        messages=[ChatMessage(role="user", content="Say hello.")],
        max_tokens=max_tokens,
        temperature=0.0,
        **kwargs,
    )


@pytest.fixture
def openai_host(host: PluginHost) -> PluginHost:
    host.register(carrier_plugin_openai.plugin, name="openai")
    return host


# ---- Real server: llama.cpp (xllamacpp) ---------------------------------------------


async def test_chat_against_llama_cpp(
    openai_host: PluginHost, llama_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", LLAMA_KEY)
    model = openai_host.models.create("openai", base_url=llama_url, model="smollm2")
    try:
        response = await model.generate(hello())
    finally:
        await model.aclose()
    assert response.text.strip()
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 8
    assert response.finish_reason in ("stop", "length")


async def test_streaming_against_llama_cpp(
    openai_host: PluginHost, llama_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", LLAMA_KEY)  # the SDK's own variable works too
    model = openai_host.models.create("openai", base_url=llama_url)
    deltas: list[str] = []
    final = None
    try:
        async for piece in model.stream(hello(max_tokens=10)):
            if piece.response is not None:
                final = piece.response
            elif piece.text:
                deltas.append(piece.text)
    finally:
        await model.aclose()
    assert final is not None
    assert len(deltas) > 1
    assert "".join(deltas) == final.text
    assert final.usage.output_tokens > 0


async def test_structured_output_against_llama_cpp(
    openai_host: PluginHost, llama_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", LLAMA_KEY)
    model = openai_host.models.create("openai", base_url=llama_url)
    request = ModelRequest(
        messages=[ChatMessage(role="user", content="Invent a person as JSON.")],
        response_schema=Person.model_json_schema(),
        max_tokens=40,
        temperature=0.0,
    )
    try:
        response = await model.generate(request)
    finally:
        await model.aclose()
    person = Person.model_validate(response.structured)
    assert person.name


async def test_embeddings_against_llama_cpp(
    openai_host: PluginHost, llama_embedding_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", LLAMA_KEY)
    model = openai_host.models.create("openai", base_url=llama_embedding_url, model="smollm2-embed")
    try:
        vectors = await model.embed(["hello", "a second text"])
    finally:
        await model.aclose()
    assert len(vectors) == 2
    assert len(vectors[0]) == model.embedding_dimension == 576
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3


async def test_wrong_key_is_rejected_without_the_key(
    openai_host: PluginHost, llama_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", "sk-wrong-key-abcdef0123")
    model = openai_host.models.create("openai", base_url=llama_url)
    try:
        with pytest.raises(ModelRejectedError, match="HTTP 401") as caught:
            await model.generate(hello())
    finally:
        await model.aclose()
    assert "sk-wrong-key-abcdef0123" not in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)


async def test_runtime_answers_through_llama_cpp(
    openai_host: PluginHost, llama_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_BASE_URL", llama_url)
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", LLAMA_KEY)
    monkeypatch.setenv("CARRIER_OPENAI_MAX_TOKENS", "12")
    character = Character(name="Testy", bio=["A careful test agent."])
    agent = AgentRuntime(
        character,
        host=openai_host,
        store=InMemoryStore(),
        models={"large": "openai", "small": "openai", "embedding": None},
    )
    async with agent:
        reply = await agent.handle(IncomingMessage(text="Hello!", user_id="ada", room_id="r"))
    assert reply.texts
    assert reply.texts[0].strip()


# ---- Scripted server: tool calls and failures ---------------------------------------


async def test_tool_calls_come_back_as_action_calls(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    body = completion(
        None,
        tool_calls=[tool_call("GET_WEATHER", '{"city": "Oslo"}', "call_1")],
        finish_reason="tool_calls",
    )
    async with FakeServer(lambda r: Reply(json=body)) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        request = hello(
            actions=[
                ActionSpec(
                    name="GET_WEATHER",
                    description="Weather in a city",
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
                )
            ]
        )
        try:
            response = await model.generate(request)
        finally:
            await model.aclose()
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.json["tools"][0]["function"]["name"] == "GET_WEATHER"
    assert sent.json["tool_choice"] == "auto"
    assert sent.json["model"] == "gpt-4.1-mini"
    assert response.action_calls[0].name == "GET_WEATHER"
    assert response.action_calls[0].arguments == {"city": "Oslo"}
    assert response.usage.input_tokens == 12


async def test_streamed_tool_calls(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": "On it."})),
        (
            None,
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "GET_WEATHER", "arguments": '{"ci'},
                        }
                    ]
                }
            ),
        ),
        (None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Rome"}'}}]})),
        (None, chunk({}, finish_reason="tool_calls")),
        (None, chunk(usage={"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15})),
        (None, "[DONE]"),
    ]
    async with FakeServer(lambda r: Reply(sse=events)) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            pieces = [p async for p in model.stream(hello())]
        finally:
            await model.aclose()
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
    assert [p.text for p in pieces if p.text] == ["On it."]
    final = pieces[-1].response
    assert final is not None
    assert final.action_calls[0].arguments == {"city": "Rome"}
    assert final.usage.output_tokens == 6


def _status(status: int, **headers: str) -> Reply:
    return Reply(
        status=status, json=error_body("Something happened.", "server_error"), headers=headers
    )


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (_status(429, **{"retry-after": "2"}), TransientModelError, 2.0),
        (_status(429, **{"retry-after-ms": "150"}), TransientModelError, 0.15),
        (_status(500), TransientModelError, None),
        (_status(503), TransientModelError, None),
        (Reply(drop=True), TransientModelError, None),
        (_status(400), ModelRejectedError, None),
        (_status(404), ModelRejectedError, None),
        (
            Reply(body=b"{not json", headers={"content-type": "application/json"}),
            ModelRejectedError,
            None,
        ),
    ],
)
async def test_failures_are_translated(
    openai_host: PluginHost,
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    async with FakeServer(lambda r: reply) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            with pytest.raises(error) as caught:
                await model.generate(hello())
        finally:
            await model.aclose()
    assert len(server.requests) == 1  # max_retries=0: the SDK never retries
    assert caught.value.__cause__ is not None
    if retry_after is not None:
        assert isinstance(caught.value, TransientModelError)
        assert caught.value.retry_after == pytest.approx(retry_after)


async def test_openai_401_echo_of_the_key_is_masked(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    masked = f"Incorrect API key provided: {FAKE_KEY[:8]}***{FAKE_KEY[-4:]}."

    def handler(request: Recorded) -> Reply:
        return Reply(
            status=401, json=error_body(masked, "invalid_request_error", "invalid_api_key")
        )

    caplog.set_level(logging.DEBUG)
    async with FakeServer(handler) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            with pytest.raises(ModelRejectedError) as caught:
                await model.generate(hello())
        finally:
            await model.aclose()
    message = str(caught.value)
    assert "401" in message
    assert "CARRIER_OPENAI_API_KEY" in message
    assert FAKE_KEY not in message
    assert FAKE_KEY[-4:] + "." not in message
    assert FAKE_KEY not in caplog.text
    assert FAKE_KEY not in repr(model.settings)


# ---- Settings and model classes -----------------------------------------------------


def test_missing_key_is_a_configuration_error_naming_the_variable(
    openai_host: PluginHost,
) -> None:
    with pytest.raises(ConfigurationError, match="CARRIER_OPENAI_API_KEY"):
        openai_host.models.create("openai")


def test_compatible_server_needs_no_key(openai_host: PluginHost) -> None:
    model = openai_host.models.create("openai", base_url="http://127.0.0.1:9/v1")
    assert model.name == "openai:gpt-4.1-mini"


async def test_model_classes_pick_configured_ids(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("CARRIER_OPENAI_MODEL", "big-one")
    monkeypatch.setenv("CARRIER_OPENAI_SMALL_MODEL", "tiny-one")
    async with FakeServer(lambda r: Reply(json=completion("ok"))) as server:
        url = f"{server.url}/v1"
        models = [
            openai_host.models.create("openai", base_url=url),
            openai_host.models.create("openai", base_url=url, model="small"),
            openai_host.models.create("openai", base_url=url, model="large"),
            openai_host.models.create("openai", base_url=url, model="exact-id"),
        ]
        try:
            follows, small, large, exact = models
            await follows.generate(hello(model_class=ModelClass.SMALL))
            await follows.generate(hello(model_class=ModelClass.LARGE))
            await small.generate(hello(model_class=ModelClass.LARGE))
            await large.generate(hello(model_class=ModelClass.SMALL))
            await exact.generate(hello(model_class=ModelClass.SMALL))
        finally:
            for model in models:
                await model.aclose()
    asked = [json.loads(r.body)["model"] for r in server.requests]
    assert asked == ["tiny-one", "big-one", "tiny-one", "big-one", "exact-id"]
    assert [m.name for m in models] == [
        "openai:big-one",
        "openai:tiny-one",
        "openai:big-one",
        "openai:exact-id",
    ]


async def test_retries_and_fallback_through_the_runtime(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch, events: Any
) -> None:
    """The kernel's retry loop retries a 429 (retry-after-ms honoured); the SDK does not."""
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    calls = {"n": 0}

    def flaky(request: Recorded) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return _status(429, **{"retry-after-ms": "10"})
        return Reply(json=completion("Hello there."))

    async with FakeServer(flaky) as server:
        monkeypatch.setenv("CARRIER_OPENAI_BASE_URL", f"{server.url}/v1")
        agent = AgentRuntime(
            Character(name="Testy"),
            host=openai_host,
            store=InMemoryStore(),
            models={"large": "openai", "small": "openai", "embedding": None},
        )
        async with agent:
            reply = await agent.handle(IncomingMessage(text="Hi", user_id="ada", room_id="r"))
    assert reply.texts == ["Hello there."]
    assert len(server.requests) == 2
    (retry,) = events.of(EventType.MODEL_RETRY)
    assert retry.data["model"] == "openai:gpt-4.1-mini"
    assert FAKE_KEY not in json.dumps([e.model_dump(mode="json") for e in events.events])


async def test_a_body_without_choices_is_rejected(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    async with FakeServer(lambda r: Reply(json={"object": "chat.completion"})) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            with pytest.raises(ModelRejectedError, match=r"no choices|not a chat completion"):
                await model.generate(hello())
        finally:
            await model.aclose()


# ---- OpenAI's request rules: stop sequences -----------------------------------------

#: A six-person group room as the kernel renders it: one stop per participant and "User".
GROUP_ROOM = ModelRequest(
    system="You are Testy.",
    messages=[
        ChatMessage(role="user", content="Ada: Morning all."),
        ChatMessage(role="assistant", content="Morning, Ada."),
        ChatMessage(role="user", content="Eve: Who is buying lunch?"),
        ChatMessage(role="user", content="Cyd: Not me."),
        ChatMessage(role="user", content="Testy, what do you think?"),
    ],
    max_tokens=8,
    stop=sorted(f"\n{name}:" for name in ("Testy", "User", "Ada", "Bob", "Cyd", "Dee", "Eve")),
)
#: The agent's own name, then the latest speakers (Cyd, Eve, Ada), in the request's order.
GROUP_STOPS = ["\nAda:", "\nCyd:", "\nEve:", "\nTesty:"]


def _answer(request: Recorded) -> Reply:
    if request.json.get("stream"):
        return Reply(
            sse=[
                (None, chunk({"role": "assistant", "content": "Sandwiches."})),
                (None, chunk({}, finish_reason="stop")),
                (None, "[DONE]"),
            ]
        )
    return Reply(json=completion("Sandwiches."))


async def test_a_group_room_sends_at_most_four_stop_sequences(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp-style servers (base_url set) get the same cap as OpenAI."""
    assert len(GROUP_ROOM.stop) == 7
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    async with FakeServer(openai_rules(_answer)) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            response = await model.generate(GROUP_ROOM)
            streamed = [piece async for piece in model.stream(GROUP_ROOM)]
        finally:
            await model.aclose()
    assert response.text == "Sandwiches."
    assert streamed[-1].response is not None
    assert streamed[-1].response.text == "Sandwiches."
    assert [r.json["stop"] for r in server.requests] == [GROUP_STOPS, GROUP_STOPS]


@pytest.mark.parametrize("model_id", ["o3", "o4-mini", "o1", "gpt-5", "gpt-5-mini"])
async def test_reasoning_models_get_no_stop(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch, model_id: str
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    async with FakeServer(openai_rules(_answer)) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1", model=model_id)
        try:
            # the evaluators ask for temperature 0: reasoning models accept only the default
            response = await model.generate(GROUP_ROOM.model_copy(update={"temperature": 0.0}))
        finally:
            await model.aclose()
    assert response.text == "Sandwiches."
    (sent,) = server.requests
    assert sent.json["model"] == model_id
    assert "stop" not in sent.json
    assert "temperature" not in sent.json


async def test_more_models_without_stop_come_from_the_setting(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("CARRIER_OPENAI_NO_STOP_MODELS", '["^my-reasoner", "thinks$"]')
    rules = openai_rules(_answer, no_stop=re.compile(r"^(?:o\d|gpt-5|my-reasoner)|thinks$"))
    async with FakeServer(rules) as server:
        url = f"{server.url}/v1"
        models = [
            openai_host.models.create("openai", base_url=url, model=model_id)
            for model_id in ("my-reasoner-2", "qwen-thinks", "o3", "gpt-4.1")
        ]
        try:
            for model in models:
                assert (await model.generate(GROUP_ROOM)).text == "Sandwiches."
        finally:
            for model in models:
                await model.aclose()
    stops = [r.json.get("stop") for r in server.requests]
    assert stops == [None, None, None, GROUP_STOPS]


async def test_openai_itself_never_gets_more_than_four_stops(
    openai_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CARRIER_OPENAI_MAX_STOP_SEQUENCES raises the cap for compatible servers only."""
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("CARRIER_OPENAI_MAX_STOP_SEQUENCES", "10")
    rules = openai_rules(_answer)
    seen: list[Recorded] = []

    def openai_api(request: httpx.Request) -> httpx.Response:
        recorded = Recorded(
            request.method, request.url.path, dict(request.headers), request.content
        )
        seen.append(recorded)
        reply = rules(recorded)
        return httpx.Response(reply.status, json=reply.json)

    async with httpx.AsyncClient(transport=httpx.MockTransport(openai_api)) as client:
        model = openai_host.models.create("openai", http_client=client)
        try:
            assert (await model.generate(GROUP_ROOM)).text == "Sandwiches."
        finally:
            await model.aclose()
    assert seen[0].headers["host"] == "api.openai.com"
    assert seen[0].json["stop"] == GROUP_STOPS

    async with FakeServer(lambda r: Reply(json=completion("ok"))) as server:
        model = openai_host.models.create("openai", base_url=f"{server.url}/v1")
        try:
            await model.generate(GROUP_ROOM)
        finally:
            await model.aclose()
    assert server.requests[0].json["stop"] == GROUP_ROOM.stop


def test_a_pattern_that_is_no_regular_expression_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a regular expression"):
        OpenAISettings(no_stop_models=["(unclosed"])
