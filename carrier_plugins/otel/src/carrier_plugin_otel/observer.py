"""``OtelObserver``: the loop's events as OpenTelemetry spans and metrics.

One trace per message, following the GenAI semantic conventions::

    invoke_agent {character}          RUN_STARTED .. RUN_ENDED / RUN_FAILED
    ├── embeddings {model}            MESSAGE_STORED (embed_ms)
    ├── search_memory                 STATE_COMPOSED (search_ms)
    ├── chat {model}                  MODEL_USED (retries and fallbacks as span events)
    ├── execute_tool {action}         ACTION_STARTED .. ACTION_COMPLETED / ACTION_FAILED
    │   └── chat {model}              a model call made by the action
    └── evaluate {evaluator}          EVALUATOR_COMPLETED / EVALUATOR_FAILED

Spans whose stage reports only its end are built afterwards with explicit start and
end times (``event.at`` minus ``event.duration_ms``). Open spans are kept by message
id, so concurrent messages never share a trace. The observer is synchronous and
catches its own errors: it never raises into the loop.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import carrier
from carrier.types import Event, EventType
from carrier_plugin_otel import content, handoff

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage

__all__ = ["OtelObserver"]

logger = logging.getLogger("carrier.otel")

_SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
#: Event data keys of cached and reasoning tokens (when a backend reports them).
_EXTRA_USAGE = {
    "cache_read_input_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_input_tokens": "gen_ai.usage.cache_write.input_tokens",
    "reasoning_output_tokens": "gen_ai.usage.reasoning.output_tokens",
}


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _split_model(name: str) -> tuple[str, str]:
    """``"openai:gpt-4o"`` → ``("openai", "gpt-4o")``; a bare name is both."""
    provider, _, model = name.partition(":")
    return provider, model or provider


class _Run:
    """The open spans of one message."""

    __slots__ = ("agent_name", "context", "output", "pending", "provider", "span", "tools")

    def __init__(self, span: Span, agent_name: str) -> None:
        self.span = span
        self.context: Context = trace.set_span_in_context(span)
        self.agent_name = agent_name
        #: Open ``execute_tool`` spans, innermost last: (action, span, its context).
        self.tools: list[tuple[str, Span, Context]] = []
        #: Retries and fallbacks waiting for the model call they belong to.
        self.pending: list[tuple[str, dict[str, Any], int]] = []
        self.output: str | None = None
        self.provider: str | None = None

    def parent(self) -> Context:
        return self.tools[-1][2] if self.tools else self.context


class OtelObserver:
    """A plugin object: ``host.register(OtelObserver(...), name="otel")``.

    Args:
        tracer_provider: Where spans go; default: the global provider.
        meter_provider: Where metrics go; default: the global provider.
        capture_content: Put message text, prompts, tool arguments and results in the
            spans (the conventions' opt-in ``gen_ai.*.messages`` attributes).
        max_open: Most messages with open spans; beyond it the oldest is ended
            (``carrier.incomplete``), so runs cut off by cancellation never pile up.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool = False,
        max_open: int = 10_000,
    ) -> None:
        self.capture_content = capture_content
        self._tracer = trace.get_tracer("carrier", tracer_provider=tracer_provider)
        meter = metrics.get_meter("carrier", meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            unit="s",
            description="Duration of a tool (Carrier action) execution.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._agent_duration = meter.create_histogram(
            "gen_ai.invoke_agent.duration",
            unit="s",
            description="Duration of an agent's handling of one message.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._max_open = max_open
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        #: Recently ended runs, for what comes after the answer (the evaluators).
        self._ended: OrderedDict[str, _Run] = OrderedDict()
        self._failed_once = False
        self._handlers: dict[EventType, Callable[[Event], None]] = {
            EventType.RUN_STARTED: self._run_started,
            EventType.MESSAGE_STORED: self._message_stored,
            EventType.SHOULD_RESPOND: self._should_respond,
            EventType.STATE_COMPOSED: self._state_composed,
            EventType.MODEL_RETRY: self._chain_event,
            EventType.MODEL_FALLBACK: self._chain_event,
            EventType.MODEL_USED: self._model_used,
            EventType.ACTION_STARTED: self._action_started,
            EventType.ACTION_COMPLETED: self._action_ended,
            EventType.ACTION_FAILED: self._action_ended,
            EventType.PROVIDER_FAILED: self._provider_failed,
            EventType.EVALUATOR_COMPLETED: self._evaluated,
            EventType.EVALUATOR_FAILED: self._evaluated,
            EventType.RUN_ENDED: self._run_ended,
            EventType.RUN_FAILED: self._run_ended,
        }

    @carrier.hookimpl
    def carrier_trace_context(
        self, runtime: AgentRuntime, message: IncomingMessage, executor: str
    ) -> dict[str, str] | None:
        """Headers that make the worker's spans part of this message's trace."""
        try:
            return handoff.handoff_headers(self._tracer, runtime, message, executor)
        except Exception:  # tracing must never break the hand-off
            logger.exception("Recording the hand-off of a message failed")
            return None

    @carrier.hookimpl
    def carrier_on_event(self, event: Event) -> None:
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        try:
            handler(event)
        except Exception:  # tracing must never break the loop
            if not self._failed_once:
                self._failed_once = True
                logger.exception("Tracing a %s event failed", event.type.value)
            else:
                logger.debug("Tracing a %s event failed", event.type.value, exc_info=True)

    # ---- runs ------------------------------------------------------------------------

    def _run(self, event: Event) -> _Run | None:
        key = event.message_id
        if key is None:
            return None
        return self._runs.get(key) or self._ended.get(key)

    def _run_started(self, event: Event) -> None:
        key = event.message_id
        if key is None:
            return
        data = event.data
        previous = self._runs.pop(key, None)
        if previous is not None:
            self._end_run(previous, event, incomplete=True)
        agent_name = str(data.get("agent_name") or event.agent_id)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent_name,
            "gen_ai.agent.id": event.agent_id,
            "carrier.message.id": key,
        }
        if event.room_id is not None:
            attributes["gen_ai.conversation.id"] = event.room_id
        for name, attribute in (
            ("source", "carrier.platform"),
            ("room_type", "carrier.room.type"),
            ("role", "carrier.sender.role"),
        ):
            if data.get(name) is not None:
                attributes[attribute] = data[name]
        if self.capture_content and data.get("text"):
            attributes["gen_ai.input.messages"] = content.text_messages("user", data["text"])
        span = self._tracer.start_span(
            f"invoke_agent {agent_name}",
            context=handoff.parent_of(data.get("trace_context")),  # from another process
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.at),
        )
        self._runs[key] = _Run(span, agent_name)
        if len(self._runs) > self._max_open:
            _, oldest = self._runs.popitem(last=False)
            self._end_run(oldest, event, incomplete=True)

    def _run_ended(self, event: Event) -> None:
        key = event.message_id
        if key is None or (run := self._runs.pop(key, None)) is None:
            return
        span, data = run.span, event.data
        failed = event.type is EventType.RUN_FAILED
        for name, attribute in (
            ("responses", "carrier.responses"),
            ("ignored", "carrier.ignored"),
            ("duplicate", "carrier.duplicate"),
            ("in_progress", "carrier.in_progress"),
        ):
            if data.get(name) is not None:
                span.set_attribute(attribute, data[name])
        if run.provider is not None:
            span.set_attribute("gen_ai.provider.name", run.provider)
        for name, attributes, at in run.pending:  # retries and fallbacks of a failed call
            span.add_event(name, attributes, timestamp=at)
        run.pending.clear()
        if failed:
            span.set_attribute("error.type", "carrier.run_failed")
            span.set_status(Status(StatusCode.ERROR, str(data.get("error") or "")))
        elif self.capture_content and run.output is not None and not data.get("ignored"):
            span.set_attribute(
                "gen_ai.output.messages", content.text_messages("assistant", run.output)
            )
        self._end_run(run, event)
        if event.duration_ms:
            attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": run.agent_name,
            }
            if failed:
                attributes["error.type"] = "carrier.run_failed"
            self._agent_duration.record(event.duration_ms / 1000, attributes)
        self._ended[key] = run
        if len(self._ended) > 1000:
            self._ended.popitem(last=False)

    def _end_run(self, run: _Run, event: Event, *, incomplete: bool = False) -> None:
        end = _ns(event.at)
        for _, tool, _ in reversed(run.tools):
            tool.set_attribute("carrier.incomplete", True)
            tool.end(end_time=end)
        run.tools.clear()
        if incomplete:
            run.span.set_attribute("carrier.incomplete", True)
        run.span.end(end_time=end)

    # ---- stages ----------------------------------------------------------------------

    def _message_stored(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        data = event.data
        run.span.set_attribute("carrier.message.new", bool(data.get("new")))
        model = data.get("embedding_model")
        if model is None:
            return
        provider, name = _split_model(str(model))
        start = event.at - event.duration_ms / 1000
        span = self._tracer.start_span(
            f"embeddings {name}",
            context=run.context,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": name,
            },
            start_time=_ns(start),
        )
        seconds = float(data.get("embed_ms") or 0.0) / 1000
        attributes = {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": provider}
        if not data.get("embedded", True):
            span.set_attribute("error.type", "carrier.embedding_failed")
            span.set_status(Status(StatusCode.ERROR, "the message was stored without embedding"))
            attributes["error.type"] = "carrier.embedding_failed"
        span.end(end_time=_ns(start + seconds))
        attributes["gen_ai.request.model"] = name
        self._duration.record(seconds, attributes)

    def _should_respond(self, event: Event) -> None:
        run = self._run(event)
        if run is not None:
            run.span.set_attribute(
                "carrier.should_respond.decision", str(event.data.get("decision"))
            )
            run.span.set_attribute(
                "carrier.should_respond.respond", bool(event.data.get("respond"))
            )

    def _state_composed(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        data = event.data
        if "providers" in data:
            run.span.set_attribute("carrier.providers", int(data["providers"]))
        if "search_ms" not in data:
            return
        start = event.at - event.duration_ms / 1000 + float(data["search_start_ms"]) / 1000
        span = self._tracer.start_span(
            "search_memory",
            context=run.context,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "search_memory",
                "carrier.memory.facts": int(data.get("facts", 0)),
                "carrier.memory.knowledge": int(data.get("knowledge", 0)),
            },
            start_time=_ns(start),
        )
        span.end(end_time=_ns(start + float(data["search_ms"]) / 1000))

    def _chain_event(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        data = event.data
        if event.type is EventType.MODEL_RETRY:
            name = "carrier.model.retry"
            attributes = {
                "carrier.model": str(data.get("model")),
                "carrier.attempt": int(data.get("attempt") or 0),
                "carrier.wait_s": float(data.get("wait_s") or 0.0),
                "error.message": str(data.get("error")),
            }
        else:
            name = "carrier.model.fallback"
            attributes = {
                "carrier.model.from": str(data.get("from")),
                "carrier.model.to": str(data.get("to")),
                "error.message": str(data.get("reason")),
            }
        run.pending.append((name, attributes, _ns(event.at)))

    def _model_used(self, event: Event) -> None:
        run = self._run(event)
        data = event.data
        provider, request_model = _split_model(str(data.get("request_model") or data.get("model")))
        response_model = _split_model(str(data.get("model") or request_model))[1]
        start = event.at - event.duration_ms / 1000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
        }
        request = data.get("request")
        if request is not None:
            for name, value in (
                ("gen_ai.request.max_tokens", request.max_tokens),
                ("gen_ai.request.temperature", request.temperature),
                ("gen_ai.request.seed", request.seed),
            ):
                if value is not None:
                    attributes[name] = value
            if request.stop:
                attributes["gen_ai.request.stop_sequences"] = list(request.stop)
        if data.get("streamed") is not None:
            attributes["gen_ai.request.stream"] = bool(data["streamed"])
        span = self._tracer.start_span(
            f"chat {request_model}",
            context=run.parent() if run is not None else None,
            kind=SpanKind.INTERNAL if provider == "local" else SpanKind.CLIENT,
            attributes=attributes,
            start_time=_ns(start),
        )
        metric = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": response_model,
        }
        span.set_attribute("gen_ai.response.model", response_model)
        if data.get("model_class"):
            span.set_attribute("carrier.model.class", data["model_class"])
        if data.get("finish_reason"):
            span.set_attribute("gen_ai.response.finish_reasons", [str(data["finish_reason"])])
        for key, attribute, token_type in (
            ("input_tokens", "gen_ai.usage.input_tokens", "input"),
            ("output_tokens", "gen_ai.usage.output_tokens", "output"),
        ):
            value = data.get(key)
            if value is not None:
                span.set_attribute(attribute, int(value))
                self._tokens.record(int(value), {**metric, "gen_ai.token.type": token_type})
        for key, attribute in _EXTRA_USAGE.items():
            if data.get(key) is not None:
                span.set_attribute(attribute, int(data[key]))
        first_chunk = data.get("first_chunk_ms")
        if first_chunk is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", first_chunk / 1000)
            self._first_chunk.record(first_chunk / 1000, metric)
        response = data.get("response")
        if response is not None and response.action_calls:
            span.set_attribute("carrier.action_calls", [c.name for c in response.action_calls])
        if run is not None:
            for name, event_attributes, at in run.pending:
                span.add_event(name, event_attributes, timestamp=at)
            run.pending.clear()
            run.provider = run.provider or provider
            if response is not None and not run.tools and data.get("model_class") == "large":
                run.output = response.text
        if self.capture_content:
            self._model_content(span, request, response)
        span.end(end_time=_ns(event.at))
        self._duration.record(event.duration_ms / 1000, metric)

    @staticmethod
    def _model_content(span: Span, request: Any, response: Any) -> None:
        if request is not None:
            system = content.system_instructions(request)
            if system is not None:
                span.set_attribute("gen_ai.system_instructions", system)
            span.set_attribute("gen_ai.input.messages", content.input_messages(request))
            tools = content.tool_definitions(request)
            if tools is not None:
                span.set_attribute("gen_ai.tool.definitions", tools)
        if response is not None:
            span.set_attribute("gen_ai.output.messages", content.output_messages(response))

    def _action_started(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        data = event.data
        action = str(data.get("action"))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": action,
            "gen_ai.tool.type": "function",
        }
        if data.get("call_id"):
            attributes["gen_ai.tool.call.id"] = str(data["call_id"])
        if data.get("idempotency_key"):
            attributes["carrier.idempotency_key"] = str(data["idempotency_key"])
        if self.capture_content and data.get("arguments") is not None:
            attributes["gen_ai.tool.call.arguments"] = content.dumps(data["arguments"])
        span = self._tracer.start_span(
            f"execute_tool {action}",
            context=run.parent(),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.at),
        )
        run.tools.append((action, span, trace.set_span_in_context(span)))

    def _action_ended(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        data = event.data
        action = str(data.get("action"))
        span: Span | None = None
        for index in range(len(run.tools) - 1, -1, -1):
            if run.tools[index][0] == action:
                span = run.tools.pop(index)[1]
                break
        started = False
        if span is None:  # refused before it ran: not offered, wrong role, bad arguments
            span = self._tracer.start_span(
                f"execute_tool {action}",
                context=run.parent(),
                kind=SpanKind.INTERNAL,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": action,
                    "gen_ai.tool.type": "function",
                },
                start_time=_ns(event.at),
            )
        else:
            started = True
        success = event.type is EventType.ACTION_COMPLETED and data.get("success", True)
        span.set_attribute("carrier.action.success", bool(success))
        if data.get("refused"):
            span.set_attribute("carrier.action.refused", True)
        if self.capture_content and data.get("text") is not None:
            span.set_attribute("gen_ai.tool.call.result", str(data["text"]))
        error_type = None
        if not success:
            error_type = (
                "carrier.action_refused" if data.get("refused") else "carrier.action_failed"
            )
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, str(data.get("error") or "")))
        span.end(end_time=_ns(event.at))
        if started or event.duration_ms:
            attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": action}
            if error_type is not None:
                attributes["error.type"] = error_type
            seconds = event.duration_ms / 1000 if event.duration_ms else 0.0
            self._tool_duration.record(seconds, attributes)

    def _provider_failed(self, event: Event) -> None:
        run = self._run(event)
        if run is not None and run.span.is_recording():
            run.span.add_event(
                "carrier.provider.failed",
                {
                    "carrier.provider": str(event.data.get("provider")),
                    "error.message": str(event.data.get("error")),
                },
                timestamp=_ns(event.at),
            )

    def _evaluated(self, event: Event) -> None:
        run = self._run(event)
        if run is None:
            return
        name = str(event.data.get("evaluator"))
        start = event.at - event.duration_ms / 1000
        span = self._tracer.start_span(
            f"evaluate {name}",
            context=run.context,
            kind=SpanKind.INTERNAL,
            attributes={"carrier.evaluator.name": name},
            start_time=_ns(start),
        )
        success = event.type is EventType.EVALUATOR_COMPLETED
        span.set_attribute("carrier.evaluator.success", success)
        if not success:
            span.set_attribute("error.type", "carrier.evaluator_failed")
            span.set_status(Status(StatusCode.ERROR, str(event.data.get("error") or "")))
        span.end(end_time=_ns(event.at))
