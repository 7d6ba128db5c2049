"""The installed distribution exposes the ``otel`` entry point, which stays off (no
OpenTelemetry, no spans) until it is enabled."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator

import carrier_plugin_otel
import pytest
from carrier_plugin_otel import default, plugin
from carrier_plugin_otel.settings import OtelSettings

import carrier

OTEL_VARIABLES = (
    "CARRIER_OTEL_ENABLED",
    "CARRIER_OTEL_CAPTURE_CONTENT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    carrier_plugin_otel.shutdown()
    yield
    carrier_plugin_otel.shutdown()


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="otel")
    assert [ep.value for ep in points] == ["carrier_plugin_otel.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-otel"
    assert point.load() is plugin


def test_autoloaded_host_has_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARRIER_OTEL_CAPTURE_CONTENT", "1")
    host = carrier.PluginHost()
    assert "otel" in host.plugins
    settings = host.settings.get("otel")
    assert settings.capture_content is True
    assert settings.enabled is None


@pytest.mark.parametrize(
    ("environment", "active"),
    [
        ({}, False),
        ({"CARRIER_OTEL_ENABLED": "1"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "CARRIER_OTEL_ENABLED": "0"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"CARRIER_OTEL_ENABLED": "1", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_when_tracing_is_on(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], active: bool
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert OtelSettings().active() is active


def test_disabled_plugin_makes_no_spans_and_loads_no_opentelemetry() -> None:
    """In a fresh interpreter: a message through a host with the plugin registered."""
    script = """
import asyncio, sys
import carrier_plugin_otel.plugin
from carrier import AgentRuntime, Character, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.testing import FakeModel
from carrier_plugin_otel import default

async def main():
    host = PluginHost(autoload=False)
    host.register(carrier_plugin_otel.plugin, name="otel")
    async with AgentRuntime(
        Character(name="Ada"), host=host, store=InMemoryStore(),
        models={"large": FakeModel(), "small": FakeModel(), "embedding": None},
    ) as agent:
        reply = await agent.handle(IncomingMessage(text="hi"))
    assert reply.texts, reply
    assert default.observer() is None
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

asyncio.run(main())
"""
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


def test_enabled_plugin_builds_its_own_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    monkeypatch.setenv("CARRIER_OTEL_ENABLED", "1")
    monkeypatch.setenv("CARRIER_OTEL_CAPTURE_CONTENT", "true")
    observer = default.observer()
    assert observer is not None
    assert observer.capture_content is True
    # the global provider is never replaced
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
