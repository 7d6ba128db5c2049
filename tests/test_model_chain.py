"""Model specs, the Retry-After helper plugins use when translating 429/503, and the
chain's retries: a streamed answer reaches the client exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from carrier.errors import ModelError, TransientModelError
from carrier.model_chain import ModelChain, RetryPolicy, parse_model_spec, parse_retry_after
from carrier.protocols import Model
from carrier.testing import FakeModel
from carrier.types import ChatMessage, ModelRequest, ModelResponse, StreamChunk

REQUEST = ModelRequest(messages=[ChatMessage(role="user", content="Hi")])


def test_specs_with_fallbacks() -> None:
    assert parse_model_spec("anthropic:claude-x -> openai:gpt-4.1-mini → local") == [
        ("anthropic", "claude-x"),
        ("openai", "gpt-4.1-mini"),
        ("local", None),
    ]
    assert parse_model_spec("echo") == [("echo", None)]
    assert parse_model_spec("local:/models/a:b.gguf") == [("local", "/models/a:b.gguf")]


def test_retry_after_in_milliseconds_seconds_and_http_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    date = "Wed, 21 Oct 2015 07:28:30 GMT"  # 1445412510
    assert parse_retry_after({"retry-after": date}, now=1445412500.0) == 10.0
    assert parse_retry_after({"retry-after": date}, now=1445412600.0) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after(None) is None


# ---- Streams reach the client exactly once ----------------------------------------

FAST = RetryPolicy(attempts=4, budget_s=5.0, initial_s=0.001, max_wait_s=0.001, jitter_s=0.0)


class ScriptedStream(Model):
    """Streams ``"Hello"``, ``" world"``; the first ``fail`` calls raise
    ``TransientModelError`` after ``fail_after`` deltas."""

    def __init__(self, *, name: str = "flaky", fail: int = 1, fail_after: int = 1) -> None:
        self.name = name
        self.fail = fail
        self.fail_after = fail_after
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("a streamed answer must come from stream()")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        deltas = ["Hello", " world"]
        for index, delta in enumerate(deltas):
            if self.calls <= self.fail and index == self.fail_after:
                raise TransientModelError("503 from the backend")
            yield StreamChunk(text=delta)
        yield StreamChunk(response=ModelResponse(text="".join(deltas), model=self.name))


class Client:
    """What an ``on_text`` client receives, and the chain's events."""

    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def on_text(self, delta: str) -> None:
        self.deltas.append(delta)

    async def on_event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))


async def test_a_stream_failing_after_text_is_not_retried() -> None:
    model = ScriptedStream(fail=1, fail_after=1)
    fallback = FakeModel(default_text="Hello from elsewhere")
    client = Client()
    chain = ModelChain([model, fallback], policy=FAST)
    with pytest.raises(ModelError) as caught:
        await chain.generate(REQUEST, on_text=client.on_text, on_event=client.on_event)
    assert client.deltas == ["Hello"]  # never "Hello" twice, nothing from the fallback
    assert model.calls == 1
    assert fallback.requests == []
    assert client.events == []
    error = caught.value
    assert not isinstance(error, TransientModelError)  # no outer loop retries it either
    assert isinstance(error.__cause__, TransientModelError)
    assert "flaky failed after 5 characters" in str(error)
    assert "503 from the backend" in str(error)


async def test_a_stream_failing_before_text_is_retried_and_sent_once() -> None:
    model = ScriptedStream(fail=2, fail_after=0)
    client = Client()
    chain = ModelChain([model], policy=FAST)
    response = await chain.generate(REQUEST, on_text=client.on_text, on_event=client.on_event)
    assert client.deltas == ["Hello", " world"]
    assert response.text == "Hello world"
    assert model.calls == 3
    assert [kind for kind, _ in client.events] == ["retry", "retry"]


async def test_a_stream_failing_before_text_falls_back() -> None:
    model = ScriptedStream(fail=99, fail_after=0)
    fallback = ScriptedStream(name="spare", fail=0)
    client = Client()
    chain = ModelChain([model, fallback], policy=FAST)
    response = await chain.generate(REQUEST, on_text=client.on_text, on_event=client.on_event)
    assert "".join(client.deltas) == "Hello world"
    assert response.model == "spare"
    assert model.calls == FAST.attempts
    assert [kind for kind, _ in client.events][-1] == "fallback"


async def test_a_streamed_answer_that_fails_validation_does_not_fall_back() -> None:
    fallback = FakeModel(name="spare", default_text="{}")
    client = Client()
    chain = ModelChain([FakeModel(default_text="not json"), fallback], policy=FAST)
    with pytest.raises(ModelError, match=r"failed after 8 characters.*not JSON"):
        await chain.generate(
            REQUEST, on_text=client.on_text, validate=lambda response: "The answer is not JSON."
        )
    assert "".join(client.deltas) == "not json"
    assert fallback.requests == []


async def test_without_streaming_transient_failures_are_still_retried() -> None:
    model = FakeModel().queue(error=TransientModelError("429"), times=2).queue("fine")
    response = await ModelChain([model], policy=FAST).generate(REQUEST)
    assert response.text == "fine"
    assert len(model.requests) == 3


async def test_answers_lose_what_no_store_can_keep_and_a_clean_one_is_left_as_it_is() -> None:
    """NUL characters go, each lone surrogate becomes U+FFFD: in the streamed deltas,
    the text, the thought, action arguments and the structured value alike."""
    from carrier.types import ActionCall

    dirty = ModelResponse(
        text="a\x00b \ud800",
        thought="th\x00ought",
        action_calls=[ActionCall(name="NOTE", arguments={"t\x00": ["x\udfff", 3]})],
        structured={"k": "v\x00"},
    )
    model = FakeModel().queue(response=dirty)
    clean = ModelResponse(text="plain answer")
    model.queue(response=clean)
    chain = ModelChain([model], policy=FAST)
    deltas: list[str] = []

    async def on_text(delta: str) -> None:
        deltas.append(delta)

    cleaned = await chain.generate(REQUEST, on_text=on_text)
    assert cleaned.text == "ab \ufffd"
    assert "".join(deltas) == "ab \ufffd"
    assert cleaned.thought == "thought"
    assert cleaned.action_calls[0].arguments == {"t": ["x\ufffd", 3]}
    assert cleaned.structured == {"k": "v"}
    assert await chain.generate(REQUEST) is clean
