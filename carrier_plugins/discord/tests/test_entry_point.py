"""The installed distribution exposes the ``discord`` entry point; discovery stays light."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from carrier_plugin_discord import plugin
from carrier_plugin_discord.settings import DiscordSettings

import carrier


def test_entry_point_is_installed() -> None:
    points = importlib.metadata.entry_points(group="carrier", name="discord")
    assert [ep.value for ep in points] == ["carrier_plugin_discord.plugin"]
    (point,) = points
    assert point.dist is not None
    assert point.dist.name == "carrier-plugin-discord"
    assert point.load() is plugin


def test_autoloaded_host_offers_the_client_command_and_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CARRIER_DISABLE_PLUGIN_AUTOLOAD", "CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    host = carrier.PluginHost()
    assert "discord" in host.clients.names()
    assert "discord" in host.commands.names()
    assert "REACT" in host.actions.names()


def test_importing_the_plugin_loads_no_discord_library() -> None:
    code = (
        "import sys, carrier_plugin_discord.plugin\n"
        "print(','.join(m for m in ('discord', 'aiohttp') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_settings_read_the_environment_and_keep_the_token_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_DISCORD_TOKEN", "secret-token")
    monkeypatch.setenv("CARRIER_DISCORD_OWNERS", "1, 2")
    monkeypatch.setenv("CARRIER_DISCORD_ADMIN_ROLES", "[5]")
    monkeypatch.setenv("CARRIER_DISCORD_ALLOWED_CHANNELS", "10")
    monkeypatch.setenv("CARRIER_DISCORD_LISTEN_CHANNELS", "11,12")
    monkeypatch.setenv("CARRIER_DISCORD_DM_POLICY", "allowlist")
    settings = DiscordSettings(_env_file=None)
    assert settings.owners == [1, 2]
    assert settings.admin_roles == [5]
    assert settings.allowed_channels == [10]
    assert settings.listen_channels == [11, 12]
    assert settings.dm_policy == "allowlist"
    assert "secret-token" not in repr(settings)
    assert "secret-token" not in settings.token_key


async def test_a_character_overrides_the_token(
    monkeypatch: pytest.MonkeyPatch, host: carrier.PluginHost
) -> None:
    from carrier_plugin_discord.client import DiscordClient

    from carrier.builtin.memory_store import InMemoryStore
    from carrier.character import Character
    from carrier.runtime import AgentRuntime
    from carrier.testing import FakeModel

    monkeypatch.setenv("CARRIER_DISCORD_TOKEN", "shared")
    model = FakeModel()
    models = {"large": model, "small": model, "embedding": None}
    runtimes = [
        AgentRuntime(Character(name="A"), host=host, store=InMemoryStore(), models=models),
        AgentRuntime(
            Character(name="B", secrets={"DISCORD_TOKEN": "own"}),
            host=host,
            store=InMemoryStore(),
            models=models,
        ),
    ]
    groups = DiscordClient().select(runtimes)
    assert len(groups) == 2
    assert {r.character.name for group in groups.values() for r in group} == {"A", "B"}
