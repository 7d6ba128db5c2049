"""Retries, fallbacks, streaming, embeddings and memory searches, as a tracing tool shows them."""

from __future__ import annotations

from carrier_plugin_otel.testing import Telemetry

import carrier
from carrier.errors import ModelRejectedError, TransientModelError
from carrier.testing import FakeModel, FunctionModel
from carrier.types import IncomingMessage, ModelRequest, ModelResponse, Usage


class Backends:
    """``flaky:*`` fails once transiently then is rejected; ``steady:*`` answers."""

    def __init__(self) -> None:
        self.calls = 0

    def flaky(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.calls == 1:
            raise TransientModelError("429 slow down")
        raise ModelRejectedError("400 no")

    @carrier.hookimpl
    def carrier_register_models(self, models) -> None:  # type: ignore[no-untyped-def]
        models.add("flaky", lambda model="x": FunctionModel(self.flaky, name=f"flaky:{model}"))
        models.add(
            "steady",
            lambda model="y": FunctionModel(
                lambda r: ModelResponse(text="fine", model=f"{model}-v2"), name=f"steady:{model}"
            ),
        )


async def test_retries_and_fallbacks_are_events_of_the_model_call(
    telemetry: Telemetry,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    host = make_host(otel=telemetry.observer(), backends=Backends())
    async with make_agent(host, "flaky:m1 -> steady:m2") as agent:
        reply = await agent.handle(IncomingMessage(text="hi", room_id="kitchen"))
    assert reply.texts == ["fine"]

    chat = telemetry.span("chat m1")
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.provider.name"] == "flaky"
    assert chat.attributes["gen_ai.request.model"] == "m1"
    assert chat.attributes["gen_ai.response.model"] == "m2-v2"
    retry, fallback = chat.events
    assert retry.name == "carrier.model.retry"
    assert retry.attributes is not None
    assert retry.attributes["carrier.model"] == "flaky:m1"
    assert retry.attributes["carrier.attempt"] == 1
    assert "429" in str(retry.attributes["error.message"])
    assert fallback.name == "carrier.model.fallback"
    assert fallback.attributes is not None
    assert fallback.attributes["carrier.model.from"] == "flaky:m1"
    assert fallback.attributes["carrier.model.to"] == "steady:m2"
    assert chat.start_time <= retry.timestamp <= fallback.timestamp <= chat.end_time


async def test_a_chain_that_fails_marks_the_message_span(
    telemetry: Telemetry,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    def rejected(request: ModelRequest) -> ModelResponse:
        raise ModelRejectedError("400 content filter")

    host = make_host(otel=telemetry.observer())
    async with make_agent(host, FunctionModel(rejected, name="openai:gpt-test")) as agent:
        reply = await agent.handle(IncomingMessage(text="hi", room_id="kitchen"))
    assert reply.error
    (root,) = telemetry.spans()
    assert root.status.status_code.name == "ERROR"
    assert "content filter" in str(root.status.description)
    assert root.attributes is not None
    assert root.attributes["error.type"] == "carrier.run_failed"


async def test_streamed_answer_has_time_to_first_chunk(
    telemetry: Telemetry,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    host = make_host(otel=telemetry.observer())
    chunks: list[str] = []

    async def on_text(text: str) -> None:
        chunks.append(text)

    model = FakeModel(name="local:tiny", default_text="one two three")
    async with make_agent(host, model) as agent:
        await agent.handle(IncomingMessage(text="hi", room_id="kitchen"), on_text=on_text)
    assert "".join(chunks) == "one two three"
    chat = telemetry.span("chat tiny")
    assert chat.kind.name == "INTERNAL"  # an in-process model
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.request.stream"] is True
    first = chat.attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(first, float)
    assert 0 <= first <= (chat.end_time - chat.start_time) / 1e9
    (point,) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert point.count == 1


async def test_embedding_and_memory_search_spans(
    telemetry: Telemetry,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    host = make_host(otel=telemetry.observer())
    model = FakeModel(name="openai:gpt-test", embedding_dimension=16)
    async with make_agent(host, model, embedding=model) as agent:
        await agent.handle(IncomingMessage(text="hi", room_id="kitchen"))

    root = telemetry.span("invoke_agent Ada")
    embeddings = telemetry.span("embeddings gpt-test")
    search = telemetry.span("search_memory")
    for span in (embeddings, search):
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
    assert embeddings.end_time <= search.start_time
    assert embeddings.attributes is not None
    assert embeddings.attributes["gen_ai.operation.name"] == "embeddings"
    assert embeddings.attributes["gen_ai.provider.name"] == "openai"
    assert search.attributes is not None
    assert search.attributes["carrier.memory.facts"] == 0
    durations = telemetry.points("gen_ai.client.operation.duration")
    assert sorted(p.attributes["gen_ai.operation.name"] for p in durations) == [
        "chat",
        "embeddings",
    ]


class CachedBackend:
    """``cached:*`` answers with usage that says most of the prompt came from the cache."""

    @carrier.hookimpl
    def carrier_register_models(self, models) -> None:  # type: ignore[no-untyped-def]
        usage = Usage(
            input_tokens=120,
            output_tokens=7,
            cache_read_input_tokens=100,
            cache_write_input_tokens=0,
        )
        models.add(
            "cached",
            lambda model="c": FunctionModel(
                lambda r: ModelResponse(text="cached", usage=usage), name=f"cached:{model}"
            ),
        )


async def test_cached_prompt_tokens_reach_the_model_call_span(
    telemetry: Telemetry,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    host = make_host(otel=telemetry.observer(), backends=CachedBackend())
    async with make_agent(host, "cached:m") as agent:
        await agent.handle(IncomingMessage(text="hi", room_id="kitchen"))
    attributes = telemetry.span("chat m").attributes
    assert attributes is not None
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attributes["gen_ai.usage.cache_write.input_tokens"] == 0
    assert "gen_ai.usage.reasoning.output_tokens" not in attributes  # not reported
