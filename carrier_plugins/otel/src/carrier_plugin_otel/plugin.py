"""Carrier plugin: OpenTelemetry traces and metrics. Entry point ``otel``.

Off unless enabled (``CARRIER_OTEL_ENABLED=1``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` set
while ``OTEL_SDK_DISABLED`` is not true). Only hook implementations live here;
OpenTelemetry loads on the first event once tracing is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier
from carrier_plugin_otel import default

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.runtime import AgentRuntime
    from carrier.types import Event, IncomingMessage


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    settings.add("otel", "carrier_plugin_otel.settings:OtelSettings")


@carrier.hookimpl
def carrier_on_event(event: Event) -> None:
    # Plain ``def``: the kernel awaits nothing, and a span is a few dict updates.
    observer = default.observer()
    if observer is not None:
        observer.carrier_on_event(event)


@carrier.hookimpl
def carrier_trace_context(
    runtime: AgentRuntime, message: IncomingMessage, executor: str
) -> dict[str, str] | None:
    # A message leaving for a worker carries this trace's W3C headers.
    observer = default.observer()
    if observer is None:
        return None
    return observer.carrier_trace_context(runtime, message, executor)
