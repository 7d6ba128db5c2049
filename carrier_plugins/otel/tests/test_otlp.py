"""With the entry-point plugin enabled by ``OTEL_EXPORTER_OTLP_ENDPOINT``, spans reach
an OTLP/HTTP receiver on 127.0.0.1 (the protobuf a collector would get)."""

from __future__ import annotations

from collections.abc import Iterator

import carrier_plugin_otel
import carrier_plugin_otel.plugin
import pytest
from carrier_plugin_otel.testing import OtlpReceiver

from carrier.types import IncomingMessage


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


async def test_spans_arrive_over_otlp_http(
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    make_host,  # type: ignore[no-untyped-def]
    make_agent,  # type: ignore[no-untyped-def]
) -> None:
    from carrier.testing import FakeModel

    for name in ("CARRIER_OTEL_ENABLED", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "carrier-test")
    carrier_plugin_otel.shutdown()
    host = make_host(otel=carrier_plugin_otel.plugin)
    try:
        model = FakeModel(name="openai:gpt-test", default_text="hello")
        async with make_agent(host, model) as agent:
            reply = await agent.handle(IncomingMessage(text="hi", room_id="porch"))
    finally:
        carrier_plugin_otel.shutdown()  # flushes the batch processor
    assert reply.texts == ["hello"]

    assert "/v1/traces" in receiver.paths
    spans = {}
    for request in receiver.traces:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert resource["service.name"] == "carrier-test"
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "carrier"
                for span in scope_spans.spans:
                    spans[span.name] = span
    assert sorted(spans) == ["chat gpt-test", "invoke_agent Ada"]
    root, chat = spans["invoke_agent Ada"], spans["chat gpt-test"]
    assert chat.trace_id == root.trace_id
    assert chat.parent_span_id == root.span_id
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["gen_ai.conversation.id"].string_value == "porch"
    assert attributes["gen_ai.agent.name"].string_value == "Ada"
