"""The plugin registered in-process: settings, factory, store options."""

from __future__ import annotations

from pathlib import Path

import pytest
from carrier_plugin_sql import plugin
from carrier_plugin_sql.store import SqlStore

from carrier.host import PluginHost


@pytest.fixture
def sql_host() -> PluginHost:
    host = PluginHost(autoload=False)
    host.register(plugin, name="sql")
    return host


async def test_factory_builds_a_working_store(sql_host: PluginHost, tmp_path: Path) -> None:
    store = sql_host.stores.create("sqlite", url=f"sqlite:///{tmp_path}/x.db")
    assert isinstance(store, SqlStore)
    async with store:
        await store.set_cache("k", {"v": 1})
        assert await store.get_cache("k") == {"v": 1}
    assert (tmp_path / "x.db").is_file()


def test_settings_from_environment(sql_host: PluginHost, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARRIER_SQL_VECTOR_SEARCH", "sqlite-vec")
    store = sql_host.stores.create("sqlite", url="sqlite://:memory:")
    assert isinstance(store, SqlStore)
    assert store.vector_search == "sqlite-vec"


def test_url_options_win() -> None:
    store = SqlStore("sqlite://:memory:?vector_search=numpy", vector_search="sqlite-vec")
    assert store.vector_search == "numpy"
    assert SqlStore("sqlite://").vector_search == "numpy"


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    async with SqlStore(url) as store:
        await store.upsert_agent("a", "Ada", {"k": 1})
        from carrier.types import Memory

        await store.create_memory(
            Memory(id="m1", agent_id="a", entity_id="u", room_id="r", embedding=[1.0, 0.0])
        )
    async with SqlStore(url) as store:
        assert store.embedding_dimension == 2
        assert await store.get_agent("a") == {"id": "a", "name": "Ada", "data": {"k": 1}}
        hits = await store.search_memories(agent_id="a", embedding=[1.0, 0.0])
        assert [h.memory.id for h in hits] == ["m1"]


async def test_wal_mode(tmp_path: Path) -> None:
    async with SqlStore(f"sqlite:///{tmp_path}/x.db") as store:
        rows = await store._fetch("PRAGMA journal_mode", (), op="test")
        assert rows[0][0] == "wal"
        rows = await store._fetch("PRAGMA synchronous", (), op="test")
        assert rows[0][0] == 1  # NORMAL
        rows = await store._fetch("PRAGMA journal_size_limit", (), op="test")
        assert rows[0][0] == 32 * 1024 * 1024  # a restarted WAL is cut back to 32 MiB
