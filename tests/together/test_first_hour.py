"""The first hour at the terminal: ``carrier chat --new`` starts a fresh room,
``carrier forget`` deletes one user's memories in their room or everywhere (with a
confirmation) and leaves other users' and rooms' alone, ``-v`` prints the model, the
store and each stage's time, ``carrier run`` refuses at once with a model that cannot
choose actions. Real SQLite, the builtin echo model; two users."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import carrier_plugin_local.plugin
import carrier_plugin_sql.plugin
import pytest

import carrier
from carrier.chatting import os_user_name
from carrier.host import PluginHost
from carrier.registry import Registry
from carrier.settings import CarrierSettings
from carrier.testing import CliRunner


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "carrier.db"


@pytest.fixture
def carrier_settings(database: Path) -> CarrierSettings:
    return CarrierSettings(_env_file=None, database_url=f"sqlite:///{database}", model_large="echo")


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"sql": carrier_plugin_sql.plugin}


def _messages(database: Path) -> list[tuple[str, str, str]]:
    """(room, entity, text) of every stored message."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT room_id, entity_id, content FROM memories").fetchall()
    return [(room, entity, content) for room, entity, content in rows]


def _rooms_of(database: Path, user: str) -> set[str]:
    return {room for room, entity, _ in _messages(database) if entity == user}


def test_new_starts_a_fresh_room_that_later_chats_continue(
    carrier_cli: CliRunner, database: Path
) -> None:
    assert carrier_cli("chat", "--user", "ada", stdin="hello\n").exit_code == 0
    assert carrier_cli("chat", "--user", "bob", stdin="hi\n").exit_code == 0
    (first,) = _rooms_of(database, "ada")
    assert carrier_cli("chat", "--user", "ada", "--new", stdin="again\n").exit_code == 0
    assert carrier_cli("chat", "--user", "ada", stdin="still here\n").exit_code == 0
    rooms = _rooms_of(database, "ada")
    assert len(rooms) == 2
    (fresh,) = rooms - {first}
    texts = {text for room, _, text in _messages(database) if room == fresh}
    assert any("still here" in t for t in texts)  # the next chat continues the new room
    assert any("again" in t for t in texts)
    assert len(_rooms_of(database, "bob")) == 1  # Bob's conversation is untouched


def test_forget_asks_and_deletes_one_users_memories(carrier_cli: CliRunner, database: Path) -> None:
    carrier_cli("chat", "--user", "ada", stdin="my cat is Tom\n")
    carrier_cli("chat", "--user", "ada", "--new", stdin="I live in Oslo\n")
    carrier_cli("chat", "--user", "bob", stdin="my dog is Rex\n")

    refused = carrier_cli("forget", "--user", "ada")  # piped, no --yes: nothing happens
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr
    assert len(_rooms_of(database, "ada")) == 2

    here = carrier_cli("forget", "--user", "ada", "--yes")  # the current room only
    assert here.exit_code == 0, here.stderr
    assert "Deleted 2 memories of ada" in here.stdout  # the message and the answer
    texts = " ".join(text for _, _, text in _messages(database))
    assert "Oslo" not in texts
    assert "Tom" in texts
    assert "Rex" in texts

    everywhere = carrier_cli("forget", "--user", "ada", "--all", "--yes")
    assert everywhere.exit_code == 0
    texts = " ".join(text for _, _, text in _messages(database))
    assert "Tom" not in texts
    assert "Rex" in texts  # another user's memories stay
    assert _rooms_of(database, "ada") == set()


def test_verbose_shows_model_store_and_stage_times(carrier_cli: CliRunner) -> None:
    ada = carrier_cli("-v", "chat", "--user", "ada", stdin="hello\n")
    bob = carrier_cli("chat", "--user", "bob", "--name", "Bob", "-v", stdin="hi\n")  # as README
    assert ada.exit_code == 0
    assert bob.exit_code == 0
    assert "model echo" in ada.stderr
    assert "; embeddings echo;" in ada.stderr  # which model embeds (the test echo does)
    assert "SqlStore" in ada.stderr
    timings = ada.stderr.splitlines()[-1]
    assert timings.startswith("carrier: store ")
    for stage in ("state", "context", "model", "send"):
        assert f" · {stage} " in timings
    assert "user bob (Bob)" in bob.stderr


class Hello(carrier.Command):
    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--who", default="world")

    def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        print(f"hello {args.who}")
        return 0


class HelloPlugin:
    @carrier.hookimpl
    def carrier_register_commands(self, commands: Registry[carrier.Command]) -> None:
        commands.add("hello", Hello, description="Say hello.")


def test_verbose_goes_anywhere_on_the_line(carrier_cli: CliRunner, host: PluginHost) -> None:
    host.register(HelloPlugin(), name="hello")
    for argv in (
        ("-v", "hello", "--who", "ada"),  # a plugin's command (carrier serve, worker, ...)
        ("hello", "-v", "--who", "ada"),
        ("hello", "--who", "ada", "--verbose"),
    ):
        result = carrier_cli(*argv)
        assert (result.exit_code, result.stdout) == (0, "hello ada\n"), (argv, result.stderr)


def test_the_os_user_name_is_never_user_or_root() -> None:
    name = os_user_name()
    assert name is None or name.lower() not in ("user", "root")


def test_run_refuses_at_once_without_a_model_that_chooses_actions(
    carrier_settings: CarrierSettings, database: Path
) -> None:
    settings = carrier_settings.model_copy(update={"model_large": "local"})
    host = PluginHost(autoload=False, settings=settings)
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(carrier_plugin_local.plugin, name="local")
    result = CliRunner(host)("run", "--goal", "tidy the notes")
    assert result.exit_code == 1
    assert "needs a model that chooses actions" in result.stderr
    assert "CARRIER_LOCAL_ACTIONS=true" in result.stderr
    assert "CARRIER_OPENAI_BASE_URL" in result.stderr
    assert "step 1" not in result.stdout


def test_plugins_lists_what_a_small_model_turns_off(carrier_settings: CarrierSettings) -> None:
    from carrier_plugin_bootstrap import plugin as bootstrap

    host = PluginHost(autoload=False, settings=carrier_settings)
    host.register(bootstrap, name="bootstrap")
    listing = CliRunner(host)("plugins")
    assert listing.exit_code == 0
    off = [line for line in listing.stdout.splitlines() if "off with a small model" in line]
    assert sorted(line.split()[0] for line in off) == ["goals", "reflection"]
