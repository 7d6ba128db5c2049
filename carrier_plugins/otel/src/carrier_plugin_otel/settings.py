"""``OtelSettings``: the ``otel`` settings namespace (``CARRIER_OTEL_*``)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OtelSettings"]

_TRUE = ("1", "true", "yes", "on")


class OtelSettings(BaseSettings):
    """Whether the loop is traced, and whether message content goes into spans."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_OTEL_", extra="ignore")

    enabled: bool | None = Field(
        default=None,
        description="Trace the loop. Default: on when OTEL_EXPORTER_OTLP_ENDPOINT (or "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set and OTEL_SDK_DISABLED is not true.",
    )
    capture_content: bool = Field(
        default=False,
        description="Record message text, prompts, tool arguments and results in spans "
        "(gen_ai.input.messages, gen_ai.output.messages, ...). Off: only sizes and names.",
    )

    def active(self) -> bool:
        """Whether tracing is on: ``enabled``, or an OTLP endpoint is configured;
        never while ``OTEL_SDK_DISABLED`` is true."""
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
            return False
        if self.enabled is not None:
            return self.enabled
        return bool(
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
