"""The installed distribution exposes the ``sql`` entry point and the ``sqlite`` store."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from carrier_plugin_sql import plugin

import carrier


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="sql")
    assert [ep.value for ep in points] == ["carrier_plugin_sql.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-sql"
    assert point.load() is plugin


def test_autoloaded_host_offers_sqlite(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CARRIER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("CARRIER_PLUGINS", raising=False)
    monkeypatch.delenv("CARRIER_DISABLE_PLUGINS", raising=False)
    host = carrier.PluginHost()
    assert "sqlite" in host.stores.names()
    store = host.stores.create("sqlite", url="sqlite://:memory:")
    assert type(store).__name__ == "SqlStore"


def test_importing_plugin_loads_no_driver() -> None:
    code = (
        "import sys, carrier_plugin_sql.plugin\n"
        "heavy = sorted(m for m in ('sqlmodel', 'sqlalchemy', 'aiosqlite', 'sqlean', "
        "'sqlite_vec', 'numpy', 'pydantic_settings') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
