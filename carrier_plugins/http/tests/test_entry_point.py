"""The installed distribution exposes the ``http`` entry point; discovery stays light."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from carrier_plugin_http import plugin

import carrier


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="http")
    assert [ep.value for ep in points] == ["carrier_plugin_http.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-http"
    assert point.load() is plugin


def test_autoloaded_host_offers_serve(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    host = carrier.PluginHost()
    assert "serve" in host.commands.names()


def test_importing_the_plugin_loads_no_web_stack() -> None:
    code = (
        "import sys, carrier_plugin_http.plugin\n"
        "heavy = sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart', "
        "'pydantic_settings') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
