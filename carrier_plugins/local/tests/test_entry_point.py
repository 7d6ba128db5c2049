"""The installed distribution exposes the ``local`` entry point, found by autoload."""

from __future__ import annotations

from importlib.metadata import entry_points

import carrier


def test_entry_point_is_installed() -> None:
    (entry,) = [ep for ep in entry_points(group="carrier") if ep.name == "local"]
    assert entry.value == "carrier_plugin_local.plugin"
    assert entry.dist is not None
    assert entry.dist.name == "carrier-plugin-local"


def test_autoload_lists_the_local_model() -> None:
    host = carrier.PluginHost()
    assert "local" in host.models.names()
