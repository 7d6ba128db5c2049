"""Durable approval of actions (docs/approvals.md), on the kernel's in-memory store."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

import carrier
from carrier import (
    AccessError,
    Action,
    ActionError,
    ActionResult,
    AgentRuntime,
    Character,
    IncomingMessage,
    InputError,
    PluginHost,
    Role,
    RoomType,
)
from carrier.approvals import ApprovalStatus
from carrier.testing import FakeModel


class TransferArgs(BaseModel):
    amount: int = Field(gt=0, le=1000)
    to: str


class Transfer(Action):
    """Records each run with its idempotency key."""

    name = "TRANSFER"
    description = "Send money."
    parameters = TransferArgs
    requires_approval = True
    runs: ClassVar[list[tuple[dict[str, Any], str | None]]] = []

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        Transfer.runs.append((arguments.model_dump(), state.idempotency_key))
        return ActionResult(name=self.name, text=f"sent {arguments.amount} to {arguments.to}")


class BigOnly(Transfer):
    """Needs approval only above 100, or for a member."""

    name = "PAY"
    requires_approval = False

    def needs_approval(self, arguments, *, sender_id, role):  # type: ignore[no-untyped-def]
        return arguments.amount > 100 or (role is Role.MEMBER and sender_id == "mallory")


class Expiring(Transfer):
    name = "EXPIRING"
    approval_expires_s = 0.0
    approval_default = "approve"


class Plugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
        actions.add("TRANSFER", Transfer)
        actions.add("PAY", BigOnly)
        actions.add("EXPIRING", Expiring)


@pytest.fixture
def host() -> PluginHost:
    Transfer.runs = []
    host = PluginHost(autoload=False)
    host.register(Plugin(), name="leash")
    return host


def _agent(host: PluginHost, model: FakeModel) -> AgentRuntime:
    return AgentRuntime(
        Character(name="Ada", bio=["Pays."]),
        host=host,
        models={"large": model, "embedding": None},
    )


async def test_an_approved_action_runs_once_and_the_model_continues(host: PluginHost) -> None:
    model = FakeModel()
    model.queue("Sending it.", actions=[("TRANSFER", {"amount": 50, "to": "bob"})])
    model.queue("Done: 50 went to bob.")
    async with _agent(host, model) as agent:
        reply = await agent.handle(IncomingMessage(text="pay bob 50", user_id="alice"))
        assert Transfer.runs == []
        (notice,) = reply.responses
        assert notice.id == f"{reply.message.id}-{agent.agent_id}"
        (pending,) = await agent.approvals.list()
        assert pending.id in notice.content.text
        assert pending.arguments == {"amount": 50, "to": "bob"}
        assert pending.requester_id == "alice"
        assert pending.approver_role is Role.ADMIN
        with pytest.raises(AccessError):  # a member cannot approve
            await agent.approvals.decide(pending.id, approve=True, by="carol", role=Role.MEMBER)
        assert (await agent.approvals.list())[0].status is ApprovalStatus.PENDING
        decided = await agent.approvals.decide(pending.id, approve=True, by="dan", role=Role.ADMIN)
        assert decided.status is ApprovalStatus.APPROVED
        assert decided.done
        assert Transfer.runs == [({"amount": 50, "to": "bob"}, pending.idempotency_key)]
        assert pending.idempotency_key == f"{reply.message.id}:0:0"
        answer = await agent.store.get_memory(pending.response_id)
        assert answer is not None
        assert answer.content.text == "Done: 50 went to bob."
        # the model continued from the action's result
        assert "sent 50 to bob" in str(model.requests[-1].model_dump())
        with pytest.raises(ActionError):  # decided once only
            await agent.approvals.decide(pending.id, approve=False, by="dan", role=Role.ADMIN)
        assert await agent.approvals.resume(decided) is False
        assert len(Transfer.runs) == 1
        assert await agent.approvals.list() == []


async def test_invalid_edited_arguments_are_refused_and_it_stays_pending(
    host: PluginHost,
) -> None:
    model = FakeModel()
    model.queue("", actions=[("TRANSFER", {"amount": 50, "to": "bob"})])
    async with _agent(host, model) as agent:
        await agent.handle(IncomingMessage(text="pay bob", user_id="alice"))
        (pending,) = await agent.approvals.list()
        with pytest.raises(InputError, match="stays pending"):
            await agent.approvals.decide(
                pending.id, approve=True, by="dan", role=Role.OWNER, arguments={"amount": -5}
            )
        assert (await agent.approvals.get(pending.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
        assert Transfer.runs == []
        await agent.approvals.decide(
            pending.id,
            approve=True,
            by="dan",
            role=Role.OWNER,
            arguments={"amount": 20, "to": "eve"},
        )
        assert Transfer.runs == [({"amount": 20, "to": "eve"}, pending.idempotency_key)]


async def test_a_rejection_reaches_the_model_and_nothing_runs(host: PluginHost) -> None:
    model = FakeModel()
    model.queue("", actions=[("TRANSFER", {"amount": 50, "to": "bob"})])
    model.queue("Understood, I will not pay.")
    async with _agent(host, model) as agent:
        await agent.handle(IncomingMessage(text="pay bob", user_id="alice"))
        (pending,) = await agent.approvals.list()
        await agent.approvals.decide(
            pending.id, approve=False, by="dan", role=Role.ADMIN, reason="too risky"
        )
        assert Transfer.runs == []
        assert "too risky" in str(model.requests[-1].model_dump())
        answer = await agent.store.get_memory(pending.response_id)
        assert answer is not None
        assert answer.content.text == "Understood, I will not pay."


async def test_a_predicate_decides_per_call(host: PluginHost) -> None:
    model = FakeModel()
    model.queue("", actions=[("PAY", {"amount": 5, "to": "bob"})])
    model.queue("", actions=[("PAY", {"amount": 500, "to": "bob"})])
    async with _agent(host, model) as agent:
        await agent.handle(IncomingMessage(text="pay 5", user_id="alice"))
        assert len(Transfer.runs) == 1
        await agent.handle(IncomingMessage(text="pay 500", user_id="alice"))
        assert len(Transfer.runs) == 1
        assert [a.action for a in await agent.approvals.list()] == ["PAY"]


async def test_expiry_applies_the_default(host: PluginHost) -> None:
    model = FakeModel()
    model.queue("", actions=[("EXPIRING", {"amount": 5, "to": "bob"})])
    model.queue("", actions=[("TRANSFER", {"amount": 7, "to": "bob"})])
    async with _agent(host, model) as agent:
        await agent.handle(IncomingMessage(text="pay", user_id="alice"))
        (pending,) = await agent.approvals.list()
        with pytest.raises(ActionError, match="expired"):
            await agent.approvals.decide(pending.id, approve=False, by="dan", role=Role.OWNER)
        settled = await agent.approvals.get(pending.id)
        assert settled is not None
        assert settled.expired
        assert settled.done
        assert settled.status is ApprovalStatus.APPROVED  # its default
        assert Transfer.runs == [({"amount": 5, "to": "bob"}, pending.idempotency_key)]
        # a default of "reject" through the scheduler's sweep
        await agent.handle(IncomingMessage(text="pay again", user_id="alice"))
        (second,) = await agent.approvals.list()
        await agent.store.set_cache(
            f"approval:{agent.agent_id}:{second.id}",
            second.model_copy(update={"expires_at": 1.0}).model_dump(mode="json"),
        )
        await agent.approvals.recover()
        settled = await agent.approvals.get(second.id)
        assert settled is not None
        assert settled.status is ApprovalStatus.REJECTED
        assert settled.expired
        assert settled.done
        assert len(Transfer.runs) == 1


def _group(text: str, user: str, role: Role, **fields: Any) -> IncomingMessage:
    return IncomingMessage(
        text=text, user_id=user, room_id="ops", room_type=RoomType.GROUP, role=role, **fields
    )


async def test_a_reply_in_the_room_decides_with_the_senders_authenticated_role(
    host: PluginHost,
) -> None:
    model = FakeModel()
    model.queue("", actions=[("TRANSFER", {"amount": 50, "to": "bob"})])
    model.queue("Hello Alice.")  # her direct message
    model.queue("Paid bob.")
    model.queue("", actions=[("TRANSFER", {"amount": 9, "to": "eve"})])
    model.queue("Not paying eve.")
    async with _agent(host, model) as agent:
        asked = await agent.handle(_group("Ada, pay bob 50", "bob", Role.MEMBER))
        (notice,) = asked.responses
        (pending,) = await agent.approvals.list()
        refused = await agent.handle(_group("approve", "bob", Role.MEMBER))
        assert "needs the admin role" in refused.texts[0]
        assert Transfer.runs == []
        elsewhere = await agent.handle(
            IncomingMessage(text=f"approve {pending.id}", user_id="alice", role=Role.ADMIN)
        )  # an admin of another room (her DM) decides nothing here
        assert "Approval" not in " ".join(elsewhere.texts)
        assert Transfer.runs == []
        approved = await agent.handle(_group("approve", "alice", Role.ADMIN, in_reply_to=notice.id))
        assert approved.texts == [f"Approval {pending.id}: approved by alice."]
        assert Transfer.runs == [({"amount": 50, "to": "bob"}, pending.idempotency_key)]
        said = await agent.store.get_memory(pending.response_id)
        assert said is not None
        assert said.content.text == "Paid bob."
        await agent.handle(_group("Ada, pay eve 9", "bob", Role.MEMBER))
        (second,) = await agent.approvals.list()
        rejected = await agent.handle(
            _group(f"reject {second.id[:8]} not today", "olga", Role.OWNER)
        )
        assert rejected.texts == [f"Approval {second.id}: rejected by olga."]
        settled = await agent.approvals.get(second.id)
        assert settled is not None
        assert settled.reason == "not today"
        assert len(Transfer.runs) == 1
