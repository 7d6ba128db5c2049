"""Approvals over HTTP (docs/approvals.md): a member cannot approve, an admin can; the
action runs once and the model continues. Real server, real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.server import running_server
from carrier_plugin_sql.store import SqlStore
from pydantic import BaseModel, Field

import carrier
from carrier import Action, ActionResult, AgentRuntime, Character, PluginHost
from carrier.testing import FakeModel

TOKENS = {
    "tok-alice-7f3e9a": {"user": "alice", "role": "admin"},
    "tok-bob-51c2d0": "bob",
}
RUNS: list[tuple[dict[str, Any], str | None]] = []


class RefundArgs(BaseModel):
    order: str
    amount: int = Field(gt=0, le=500)


class Refund(Action):
    name = "REFUND"
    description = "Refund an order."
    parameters = RefundArgs
    requires_approval = True

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        RUNS.append((arguments.model_dump(), state.idempotency_key))
        return ActionResult(name=self.name, text=f"refunded {arguments.amount}")


class Plugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
        actions.add("REFUND", Refund)


@asynccontextmanager
async def served(
    host: PluginHost, settings_with, tmp_path: Path, model: FakeModel
) -> AsyncIterator[tuple[str, AgentRuntime]]:
    RUNS.clear()
    host.register(Plugin(), name="refunds")
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqlStore(f"sqlite:///{tmp_path}/leash.db"))
        runtime = await stack.enter_async_context(
            AgentRuntime(
                Character(name="Testy"),
                host=host,
                store=store,
                models={"large": model, "small": model, "embedding": None},
            )
        )
        app = create_app(AgentHub([runtime], host=host), settings_with(user_tokens=TOKENS))
        yield await stack.enter_async_context(running_server(app)), runtime


def _client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})


async def test_a_member_cannot_approve_and_an_admin_can(
    host: PluginHost, settings_with, tmp_path: Path
) -> None:
    model = FakeModel()
    model.queue("Refunding.", actions=[("REFUND", {"order": "A1", "amount": 40})])
    model.queue("The refund of 40 went through.")
    async with (
        served(host, settings_with, tmp_path, model) as (url, runtime),
        _client(url, "tok-bob-51c2d0") as bob,
        _client(url, "tok-alice-7f3e9a") as alice,
    ):
        sent = await bob.post("/Testy/message", data={"text": "refund order A1"})
        assert sent.status_code == 200, sent.text
        (notice,) = sent.json()
        assert "approval" in notice["text"]
        assert RUNS == []
        listed = (await bob.get("/agents/Testy/approvals")).json()["approvals"]
        (pending,) = listed  # bob sees his own request
        assert pending["requesterId"] == "bob"
        assert pending["status"] == "pending"
        base = f"/agents/Testy/approvals/{pending['id']}"
        refused = await bob.post(f"{base}/approve", json={})
        assert refused.status_code == 403, refused.text
        claimed = await bob.post(f"{base}/approve", json={"role": "owner", "by": "alice"})
        assert claimed.status_code == 403  # nothing in the body raises the role
        invalid = await alice.post(f"{base}/approve", json={"arguments": {"amount": 9999}})
        assert invalid.status_code == 400
        assert "stays pending" in invalid.json()["error"]
        assert (await alice.get("/agents/Testy/approvals")).json()["approvals"][0]["id"] == (
            pending["id"]
        )
        assert RUNS == []
        approved = await alice.post(f"{base}/approve", json={})
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert body["status"] == "approved"
        assert body["decidedBy"] == "alice"
        assert body["done"]
        assert body["responseText"] == "The refund of 40 went through."
        ((arguments, key),) = RUNS
        assert arguments == {"order": "A1", "amount": 40}
        assert key
        assert key.endswith(":0:0")
        again = await alice.post(f"{base}/approve", json={})
        assert again.status_code == 409
        assert len(RUNS) == 1
        assert (await alice.get("/agents/Testy/approvals")).json()["approvals"] == []
        answer = await runtime.store.get_memory(body["responseId"])
        assert answer is not None
        assert answer.room_id == pending["roomId"]


async def test_a_rejection_over_http(host: PluginHost, settings_with, tmp_path: Path) -> None:
    model = FakeModel()
    model.queue("", actions=[("REFUND", {"order": "B2", "amount": 10})])
    model.queue("No refund then.")
    async with (
        served(host, settings_with, tmp_path, model) as (url, _),
        _client(url, "tok-bob-51c2d0") as bob,
        _client(url, "tok-alice-7f3e9a") as alice,
    ):
        await bob.post("/Testy/message", data={"text": "refund B2"})
        (pending,) = (await alice.get("/agents/Testy/approvals")).json()["approvals"]
        base = f"/agents/Testy/approvals/{pending['id']}"
        assert (await bob.post(f"{base}/reject", json={"reason": "mine"})).status_code == 403
        rejected = await alice.post(f"{base}/reject", json={"reason": "fraud check"})
        assert rejected.status_code == 200
        assert rejected.json()["status"] == "rejected"
        assert rejected.json()["responseText"] == "No refund then."
        assert RUNS == []
        assert "fraud check" in str(model.requests[-1].model_dump())
        missing = await alice.post("/agents/Testy/approvals/nope/approve", json={})
        assert missing.status_code == 404
