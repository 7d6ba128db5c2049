"""The ``carrier`` command, run as a user runs it (a subprocess, stdin piped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from carrier.testing.distributions import plugin_distribution

CARRIER = str(Path(sys.executable).with_name("carrier"))
CHARACTERS = Path(__file__).parent / "characters"


def run(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    # the kernel alone: builtin echo model and in-memory store
    environment["CARRIER_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    environment.update(env)
    return subprocess.run(
        [CARRIER, *args], input=stdin, capture_output=True, text=True, env=environment, timeout=60
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "carrier 0.1.0"


def test_piped_chat_answers_each_line_and_exits_0() -> None:
    result = run("chat", stdin="hello there\n\nhow are you?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["You said: hello there", "You said: how are you?"]


def test_quit_ends_a_chat_without_reaching_the_agent() -> None:
    for user, quit in (("ada", "/quit"), ("bob", "/EXIT")):
        result = run("chat", "--user", user, stdin=f"hello there\n{quit}\nnever sent\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["You said: hello there"]


def test_chat_with_a_character_file() -> None:
    result = run("chat", "--character", str(CHARACTERS / "grace.yaml"), stdin="hi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "You said: hi"


def test_bad_character_file_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "X", "bio": 7}))
    result = run("chat", "--character", str(bad), stdin="hi\n")
    assert result.returncode == 1
    assert f"carrier: {bad}: bio: Input should be a valid list" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_store_scheme_is_a_clear_error() -> None:
    result = run("chat", stdin="hi\n", CARRIER_DATABASE_URL="sqlite:///tmp/x.db")
    assert result.returncode == 1
    assert "No store named 'sqlite'. Install it with: pip install carrier-plugin-sql" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_invalid_setting_is_a_clear_error() -> None:
    result = run("chat", stdin="hi\n", CARRIER_HISTORY_LIMIT="lots")
    assert result.returncode == 1
    assert "CARRIER_HISTORY_LIMIT: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_character_validate() -> None:
    good = run("character", "validate", str(CHARACTERS / "eliza_v0.json"))
    assert good.returncode == 0
    assert json.loads(good.stdout)["name"] == "Eliza"
    bad = run("character", "validate", str(CHARACTERS / "trump_v1.json"))
    assert bad.returncode == 1
    assert (
        "plugins[0]: no plugin named '@elizaos/plugin-bootstrap' is installed; install it "
        "with: pip install carrier-plugin-bootstrap"
    ) in bad.stderr


def test_character_validate_warns_about_elizaos_plugins_and_exits_0() -> None:
    file = str(CHARACTERS / "eliza_plugins_v1.json")
    result = run("character", "validate", file)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["valid"] is True
    (warning,) = summary["warnings"]
    assert warning.startswith(
        f"{file}: plugins: Carrier has no equivalent of the ElizaOS plugins "
        f"'@elizaos/plugin-node', '@elizaos/plugin-twitter', "
        f"'@elizaos-plugins/plugin-image-generation'; the agent runs without them."
    )
    assert result.stderr == f"carrier: warning: {warning}\n"


def test_plugins_lists_the_builtin_with_each_registration_described() -> None:
    result = run("plugins")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "carrier.builtin  (in-process)" in lines
    models = lines.index("models:")
    assert lines[models + 1] == (
        "  echo  Deterministic echo model (builtin, no network).  [carrier.builtin]"
    )
    assert "  memory  In-memory store (builtin, not durable).  [carrier.builtin]" in lines


def test_plugins_says_why_it_exits_1_when_a_plugin_failed_to_load(tmp_path: Path) -> None:
    site = plugin_distribution(tmp_path, "broken", "raise ImportError('no such SDK')\n")
    result = run(
        "plugins",
        PYTHONPATH=str(site),
        CARRIER_DISABLE_PLUGIN_AUTOLOAD="0",
        CARRIER_PLUGINS="broken",
    )
    assert result.returncode == 1
    assert "LOAD ERROR:" in result.stdout
    assert "no such SDK" in result.stdout
    assert "echo  Deterministic echo model" in result.stdout  # the others still load
    assert result.stderr.endswith(
        "carrier: exit status 1: 1 plugin failed to load (LOAD ERROR above) and was "
        "skipped; the others are loaded.\n"
    )


def test_a_reader_that_goes_away_ends_the_command_quietly_with_141() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    environment["CARRIER_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # as `carrier plugins | head -0`: the reader has gone before the first write
    with subprocess.Popen(
        [CARRIER, "plugins"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141
    assert stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"


def test_help_documents_the_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    help_text = result.stdout
    assert "exit status:" in help_text
    for code, meaning in [
        ("0", "success"),
        ("1", "the command failed"),
        ("2", "usage error"),
        ("3", "'carrier run': the goal was not reached"),
        ("130", "interrupted"),
        ("141", "standard output was closed early"),
    ]:
        assert f"  {code:<4} {meaning}" in help_text


def test_python_dash_m_carrier_is_the_carrier_command() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    environment["CARRIER_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "carrier", "chat"],
        input="hi\n",
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: hi\n"
    assert "usage: carrier " in run("--help").stdout


def test_run_goal_prints_each_step_and_fails_when_the_budget_is_spent() -> None:
    result = run("run", "--goal", "count to three", "--steps", "2")
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith("step 1: no action; 0/1 objectives done")
    assert lines[-1] == "goal in_progress: count to three"


def test_an_oversized_line_is_refused_and_the_next_is_answered() -> None:
    result = run("chat", stdin="x" * 50 + "\nsmall\n", CARRIER_MAX_MESSAGE_CHARS="20")
    assert result.returncode == 1
    assert "The message has 50 characters; this agent accepts at most 20" in result.stderr
    assert result.stdout.strip() == "You said: small"
