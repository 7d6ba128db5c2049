"""Traces across processes: a message handed to a worker carries its trace with it.

In the process that accepts a message, :func:`handoff_headers` records the hand-off as
a ``PRODUCER`` span (``enqueue {character}``) and returns its W3C headers, which the
executor ships with the message (``carrier_trace_context``). In the worker, the
``run_started`` event brings them back and :func:`parent_of` turns them into the parent
of the ``invoke_agent`` span, so the message is one trace in both processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage

__all__ = ["handoff_headers", "parent_of"]


def handoff_headers(
    tracer: trace.Tracer, runtime: AgentRuntime, message: IncomingMessage, executor: str
) -> dict[str, str]:
    """Record the hand-off of ``message`` to ``executor``; the headers to ship with it.
    The span's parent is the current span (an instrumented HTTP request, say)."""
    name = runtime.character.name
    attributes: dict[str, Any] = {
        "gen_ai.agent.name": name,
        "gen_ai.agent.id": runtime.agent_id,
        "carrier.executor": executor,
        "messaging.operation.type": "send",
    }
    if message.message_id is not None:
        attributes["carrier.message.id"] = message.message_id
    if message.room_id is not None:
        attributes["gen_ai.conversation.id"] = message.room_id
    span = tracer.start_span(f"enqueue {name}", kind=SpanKind.PRODUCER, attributes=attributes)
    headers: dict[str, str] = {}
    try:
        propagate.inject(headers, context=trace.set_span_in_context(span))
    finally:
        span.end()
    return headers


def parent_of(headers: object) -> Context | None:
    """The remote parent that ``headers`` (a ``run_started`` event's
    ``trace_context``) name, or ``None``."""
    if not isinstance(headers, dict) or not headers:
        return None
    return propagate.extract({str(k): str(v) for k, v in headers.items()})
