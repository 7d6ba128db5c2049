"""``carrier run --every`` schedules a goal task; ``carrier tasks list|cancel`` show and
delete it (a SQLite file shared by the commands)."""

from __future__ import annotations

import json
from pathlib import Path

import carrier_plugin_sql.plugin
import pytest
from carrier_plugin_bootstrap import plugin

from carrier.host import PluginHost
from carrier.settings import CarrierSettings
from carrier.testing.cli_runner import CliRunner


@pytest.fixture
def carrier_settings(tmp_path: Path) -> CarrierSettings:
    return CarrierSettings(
        database_url=f"sqlite:///{tmp_path / 'cli.db'}",
        model_large="echo",
        model_embedding="none",
        _env_file=None,
    )


def test_a_goal_scheduled_from_the_command_line(host: PluginHost) -> None:
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(plugin, name="bootstrap")
    cli = CliRunner(host)
    scheduled = cli("run", "--goal", "Summarise the feed", "--every", "3600", "--steps", "2")
    assert scheduled.exit_code == 0, scheduled.stderr
    assert "Scheduled task" in scheduled.stdout
    listed = cli("tasks", "list")
    assert listed.exit_code == 0, listed.stderr
    assert "every 3600s" in listed.stdout
    assert "worker=goal" in listed.stdout
    (task,) = [json.loads(line) for line in cli("tasks", "list", "--json").stdout.splitlines()]
    assert task["payload"] == {"text": "Summarise the feed", "steps": 2}
    assert cli("tasks", "cancel", task["id"]).exit_code == 0
    assert cli("tasks", "list", "--json").stdout == ""
    assert cli("tasks", "cancel", task["id"]).exit_code == 1
