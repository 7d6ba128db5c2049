"""An approval requested while a worker handles the message, decided from another
runtime on the same PostgreSQL: the action runs once (docs/approvals.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from carrier_plugin_workers.executor import WorkersExecutor
from pydantic import BaseModel

import carrier
from carrier.character import Character
from carrier.errors import AccessError
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import ActionResult, IncomingMessage, Role

RUNS: list[str | None] = []


class DeleteArgs(BaseModel):
    path: str


class Delete(Action):
    name = "DELETE_FILE"
    description = "Delete a file."
    parameters = DeleteArgs
    requires_approval = True

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        RUNS.append(state.idempotency_key)
        return ActionResult(name=self.name, text=f"deleted {arguments.path}")


class Plugin:
    def __init__(self) -> None:
        self.model = FakeModel(name="scripted")

    @carrier.hookimpl
    def carrier_register_models(self, models: Any) -> None:
        models.add("scripted", lambda **_: self.model)

    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        actions.add("DELETE_FILE", Delete)


@pytest.fixture
def plugin(host: PluginHost) -> Plugin:
    RUNS.clear()
    plugin = Plugin()
    host.register(plugin, name="deletes")
    return plugin


async def test_an_approval_from_a_worker_run_is_decided_elsewhere(
    host: PluginHost,
    character: Character,
    plugin: Plugin,
    start_worker: Callable[[], Awaitable[None]],
) -> None:
    plugin.model.queue("", actions=[("DELETE_FILE", {"path": "/tmp/x"})])
    plugin.model.queue("Deleted it.")
    await start_worker()
    async with AgentRuntime(character, host=host) as client:
        assert isinstance(client.executor, WorkersExecutor)
        reply = await client.handle(IncomingMessage(text="delete /tmp/x", user_id="bob"))
        assert "approval" in reply.texts[0]
        assert RUNS == []
        (pending,) = await client.approvals.list()
        with pytest.raises(AccessError):
            await client.approvals.decide(pending.id, approve=True, by="bob", role=Role.MEMBER)
        decided = await client.approvals.decide(
            pending.id, approve=True, by="alice", role=Role.ADMIN
        )
        assert decided.done
        assert RUNS == [pending.idempotency_key]  # noqa: SIM300
        said = await client.store.get_memory(pending.response_id)
        assert said is not None
        assert said.content.text == "Deleted it."
