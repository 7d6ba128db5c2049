"""The installed distribution exposes the ``bootstrap`` entry point, found by autoload."""

from __future__ import annotations

from importlib.metadata import entry_points

import carrier


def test_entry_point_is_installed() -> None:
    (entry,) = [ep for ep in entry_points(group="carrier") if ep.name == "bootstrap"]
    assert entry.value == "carrier_plugin_bootstrap.plugin"
    assert entry.dist is not None
    assert entry.dist.name == "carrier-plugin-bootstrap"


def test_autoload_finds_the_plugin_and_its_actions() -> None:
    host = carrier.PluginHost()
    assert "bootstrap" in host.plugins
    assert host.plugins["bootstrap"].error is None
    assert {"REPLY", "IGNORE", "SEND_MESSAGE", "UPDATE_GOAL"} <= set(host.actions.names())
    assert host.actions.entry("REPLY").distribution == "carrier-plugin-bootstrap"
