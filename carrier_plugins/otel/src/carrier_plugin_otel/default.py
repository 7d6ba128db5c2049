"""The observer the entry-point plugin uses: built on first use from the environment.

When the application has set an SDK tracer (or meter) provider globally, spans go to
it; otherwise this module builds a private one exporting over OTLP/HTTP, configured by
the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ...). The global providers are never replaced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrier_plugin_otel.observer import OtelObserver

__all__ = ["observer", "reset"]

logger = logging.getLogger("carrier.otel")

_UNSET: Any = object()
_observer: OtelObserver | None = _UNSET
_owned: list[Any] = []  # providers built here, shut down by reset()


def observer() -> OtelObserver | None:
    """The process's observer, or ``None`` while tracing is off (decided once)."""
    global _observer
    if _observer is _UNSET:
        try:
            _observer = _build()
        except Exception:  # a broken exporter setup must not reach the loop
            logger.exception("OpenTelemetry tracing could not be set up; it stays off")
            _observer = None
    return _observer


def reset() -> None:
    """Flush and shut down the providers built here; read the environment again."""
    global _observer
    _observer = _UNSET
    while _owned:
        _owned.pop().shutdown()


def _build() -> OtelObserver | None:
    from carrier_plugin_otel.settings import OtelSettings

    settings = OtelSettings()
    if not settings.active():
        return None
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from carrier_plugin_otel.observer import OtelObserver

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "carrier"}))
    tracer_provider: Any = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _owned.append(tracer_provider)
    meter_provider: Any = metrics.get_meter_provider()
    if not isinstance(meter_provider, MeterProvider):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
        _owned.append(meter_provider)
    return OtelObserver(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=settings.capture_content,
    )
