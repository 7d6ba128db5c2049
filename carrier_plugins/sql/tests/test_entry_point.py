"""The installed distribution exposes the ``sql`` entry point and the ``sqlite`` store."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

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


def test_an_up_to_date_sqlite_file_opens_without_the_table_definitions(tmp_path: Path) -> None:
    """The SQLModel tables (SQLAlchemy, ~0.4 s to import) load when a file is created or
    migrated, not at every start of `carrier chat` over an existing one."""
    script = """
import asyncio, sys
from carrier.types import Content, Memory
from carrier_plugin_sql.store import SqlStore

async def main(url):
    async with SqlStore(url) as store:
        for user in ("ada", "bob"):
            memory = Memory(agent_id="a", entity_id=user, room_id=f"dm-{user}",
                            content=Content(text=f"I am {user}"))
            assert await store.create_memory(memory)
        texts = [m.content.text for m in await store.get_memories(agent_id="a", room_id="dm-bob")]
    print(texts.count("I am bob"), texts.count("I am ada"), "sqlalchemy" in sys.modules)

asyncio.run(main(sys.argv[1]))
"""
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    # the first start creates the file (and needs the tables), the second only opens it;
    # each finds Bob's messages in his room, never Ada's
    assert [run.stdout.split() for run in runs] == [["1", "0", "True"], ["2", "0", "False"]]
