"""The installed distribution exposes the ``anthropic`` entry point, found by autoload."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import carrier


def test_entry_point_is_installed() -> None:
    (entry,) = [ep for ep in entry_points(group="carrier") if ep.name == "anthropic"]
    assert entry.value == "carrier_plugin_anthropic.plugin"
    assert entry.dist is not None
    assert entry.dist.name == "carrier-plugin-anthropic"


def test_autoload_lists_the_anthropic_model() -> None:
    host = carrier.PluginHost()
    assert "anthropic" in host.models.names()
    assert "anthropic" in host.settings.namespaces()


def test_discovery_imports_neither_the_sdk_nor_pydantic_settings() -> None:
    code = (
        "import sys, carrier\n"
        "host = carrier.PluginHost()\n"
        "assert 'anthropic' in host.models.names()\n"
        "print(sorted(m for m in ('anthropic', 'httpx', 'pydantic_settings') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
