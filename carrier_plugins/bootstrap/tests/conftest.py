"""Shared fixtures: the plugin on a fresh host, a SQLite store, scripted models."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from carrier_plugin_bootstrap import plugin
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, Role, RoomType

#: One answer that satisfies every evaluator's schema: no facts, no progress, a summary.
SMALL_DEFAULT = '{"facts": [], "completed": [], "summary": "Nothing much happened."}'


@pytest.fixture(autouse=True)
def _no_bootstrap_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the defaults, whatever the developer's environment sets."""
    for key in list(os.environ):
        if key.startswith("CARRIER_BOOTSTRAP_"):
            monkeypatch.delenv(key)


@pytest.fixture
def bootstrap_host(host: PluginHost) -> PluginHost:
    """The test host with the bootstrap plugin registered in-process."""
    host.register(plugin, name="bootstrap")
    return host


@pytest.fixture
async def sql_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path}/x.db") as store:
        yield store


@pytest.fixture
def small_model() -> FakeModel:
    """The small model the evaluators and should-respond use."""
    return FakeModel(name="small", default_text=SMALL_DEFAULT)


@pytest.fixture
def embedder() -> FakeModel:
    """Hashed-word embeddings: texts sharing words are near."""
    return FakeModel(name="embedder", embedding_dimension=256)


@pytest.fixture
async def agent(
    bootstrap_host: PluginHost,
    character: Character,
    fake_model: FakeModel,
    small_model: FakeModel,
    sql_store: SqlStore,
) -> AsyncIterator[AgentRuntime]:
    """A started runtime: bootstrap plugin, SQLite store, scripted large and small
    models, no embeddings."""
    runtime = AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": fake_model, "small": small_model, "embedding": None},
    )
    async with runtime:
        yield runtime


@pytest.fixture
def say() -> Callable[..., IncomingMessage]:
    """``say("hi", user="ada", room="dm-ada", role="owner", group=False)``."""

    def make(
        text: str,
        *,
        user: str = "ada",
        room: str | None = None,
        role: Role | str = Role.MEMBER,
        group: bool = False,
        **fields: Any,
    ) -> IncomingMessage:
        return IncomingMessage(
            text=text,
            user_id=user,
            user_name=user.capitalize(),
            room_id=room or (f"group-{user}" if group else f"dm-{user}"),
            room_type=RoomType.GROUP if group else RoomType.DIRECT,
            role=Role(role),
            **fields,
        )

    return make


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The real MiniLM embeddings of carrier-plugin-local (384 dimensions, no chat)."""
    from carrier_plugin_local.plugin import build_model
    from carrier_plugin_local.settings import LocalSettings

    model = build_model(LocalSettings(_env_file=None, threads=1))
    yield model
    model.embedder.close()  # type: ignore[attr-defined]
