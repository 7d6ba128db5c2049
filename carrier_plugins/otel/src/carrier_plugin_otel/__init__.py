"""Carrier plugin: OpenTelemetry traces and metrics of the agent loop.

Importing this package is cheap; OpenTelemetry loads when tracing is enabled
(``CARRIER_OTEL_ENABLED=1``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` set) or when an
:class:`~carrier_plugin_otel.observer.OtelObserver` is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrier_plugin_otel.observer import OtelObserver

__all__ = ["OtelObserver", "shutdown"]


def __getattr__(name: str) -> Any:
    if name == "OtelObserver":
        from carrier_plugin_otel.observer import OtelObserver

        return OtelObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shutdown() -> None:
    """Flush and close what the entry-point plugin built from the environment (its
    tracer and meter providers), so the next event reads the environment again.
    Providers the application set itself are left alone."""
    from carrier_plugin_otel import default

    default.reset()
