"""A message the agent refuses or cannot store: a clear 4xx/5xx JSON error, and no
uploaded file left on disk without a message that links to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlean
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.server import running_server
from carrier_plugin_http.settings import HttpSettings
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel

FILE = {"file": ("notes.txt", b"some notes")}


@pytest.fixture
def carrier_settings(carrier_settings: CarrierSettings) -> CarrierSettings:
    return carrier_settings.model_copy(update={"max_message_chars": 50})


def uploads(settings: HttpSettings) -> list[Path]:
    assert settings.upload_dir is not None
    return sorted(settings.upload_dir.glob("*")) if settings.upload_dir.exists() else []


@pytest.mark.parametrize("path", ["/Testy/message", "/Testy/message/stream"])
async def test_a_message_over_the_agents_limit_is_413_and_its_file_is_not_kept(
    serve_agents, http_settings, path
) -> None:
    async with serve_agents() as served, served.client() as client:
        response = await client.post(path, data={"text": "x" * 51}, files=FILE)
        assert response.status_code == 413
        assert "CARRIER_MAX_MESSAGE_CHARS" in response.json()["error"]
        assert uploads(http_settings) == []
        stored = await served.store.get_memories(
            agent_id=served.runtimes[0].agent_id,
            room_id=f"default-room-{served.runtimes[0].agent_id}-user",
        )
        assert stored == []
        ok = await client.post(path, data={"text": "x" * 50}, files=FILE)
        assert ok.status_code == 200
        assert len(uploads(http_settings)) == 1


@asynccontextmanager
async def serve_on_sqlite(
    host: PluginHost, settings: HttpSettings, url: str
) -> AsyncIterator[tuple[str, AgentRuntime]]:
    model = FakeModel(default_text="noted")
    store = SqlStore(url)
    async with store:
        runtime = AgentRuntime(
            Character(name="Testy"),
            host=host,
            store=store,
            models={"large": model, "small": model, "embedding": None},
        )
        async with (
            runtime,
            running_server(create_app(AgentHub([runtime], host=host), settings)) as base,
        ):
            yield base, runtime


@pytest.mark.parametrize("path", ["/Testy/message", "/Testy/message/stream"])
async def test_a_message_the_store_cannot_take_is_503_and_its_file_is_not_kept(
    host, http_settings, tmp_path: Path, path
) -> None:
    import httpx

    db = tmp_path / "carrier.db"
    # SQLite gives up after 0.1 s on a file another process keeps locked.
    url = f"sqlite:///{db}?busy_timeout_s=0.05&write_retry_s=0.1"
    async with (
        serve_on_sqlite(host, http_settings, url) as (base, runtime),
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        first = await client.post("/Testy/message", json={"text": "hello", "roomId": "r"})
        assert first.status_code == 200  # the room and its participants exist now
        other = sqlean.connect(str(db), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            response = await client.post(path, data={"text": "hi", "roomId": "r"}, files=FILE)
        finally:
            other.execute("ROLLBACK")
            other.close()
        if path.endswith("stream"):
            assert response.status_code == 200
            assert "event: error" in response.text
            assert '"status": 503' in response.text
        else:
            assert response.status_code == 503
            assert "memory store" in response.json()["error"]
            assert "locked" not in response.text  # SQLite's words stay in the log
        assert uploads(http_settings) == []
        texts = [
            m.content.text
            for m in await runtime.store.get_memories(agent_id=runtime.agent_id, room_id="r")
        ]
        assert texts == ["hello", "noted"]


@pytest.mark.parametrize("path", ["/Testy/message", "/Testy/message/stream"])
async def test_a_message_with_a_nul_character_is_400_and_the_next_users_is_answered(
    serve_agents, http_settings, path
) -> None:
    """PostgreSQL cannot store a NUL character: whatever the store, Ada's message is
    refused before anything is kept, with what and where, and Bob's is answered."""
    async with serve_agents() as served, served.client() as client:
        response = await client.post(
            path, data={"text": "a\x00b", "userId": "ada", "roomId": "ada-room"}, files=FILE
        )
        assert response.status_code == 400
        assert response.json()["error"] == (
            "The message's text holds a NUL character (\\x00) at position 1, which cannot "
            "be stored. Remove it and send the message again."
        )
        assert uploads(http_settings) == []
        agent_id = served.runtimes[0].agent_id
        assert await served.store.get_memories(agent_id=agent_id, room_id="ada-room") == []
        ok = await client.post(path, data={"text": "hello", "userId": "bob", "roomId": "bob-room"})
        assert ok.status_code == 200
        stored = await served.store.get_memories(agent_id=agent_id, room_id="bob-room")
        assert [m.content.text for m in stored if m.entity_id == "bob"] == ["hello"]
