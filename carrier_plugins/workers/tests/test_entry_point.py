"""The installed distribution exposes the ``workers`` entry point: the executor,
the ``carrier worker`` command and the ``workers`` settings."""

from __future__ import annotations

import importlib.metadata

import pytest
from carrier_plugin_workers import plugin

import carrier


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="workers")
    assert [ep.value for ep in points] == ["carrier_plugin_workers.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-workers"
    assert point.load() is plugin


def test_autoloaded_host_offers_the_executor_and_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    host = carrier.PluginHost()
    assert "workers" in host.executors.names()
    assert "worker" in host.commands.names()
    assert host.settings.get("workers").concurrency == 4
