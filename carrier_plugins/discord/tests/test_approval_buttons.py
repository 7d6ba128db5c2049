"""Approve and Reject buttons (docs/approvals.md): the notice that an action waits for
approval carries them; a press decides with the presser's role from Discord's data in
that guild (never from the interaction), and the run resumes once."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from carrier_plugin_discord.testing import FakeDiscord
from pydantic import BaseModel

import carrier
from carrier.approvals import ApprovalStatus
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import ActionResult, Memory, State

from .conftest import (
    ADMIN_ROLE,
    ALICE,
    BOB,
    GUILD,
    OTHER_ADMIN_ROLE,
    OTHER_GUILD,
    OTHER_TEXT,
    TEXT,
    ServeFactory,
)

CAROL = 14  # ADMIN in OTHER_GUILD only
DAVE = 15  # ADMIN in GUILD
EPHEMERAL = 1 << 6


class RefundArguments(BaseModel):
    order: str


class Refund(Action):
    """Waits for an ADMIN's approval; records each run with its idempotency key."""

    name = "REFUND"
    description = "Refund an order."
    parameters = RefundArguments
    requires_approval = True
    runs: ClassVar[list[tuple[str, str | None]]] = []

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, RefundArguments)
        Refund.runs.append((arguments.order, state.idempotency_key))
        return ActionResult(name=self.name, text=f"refunded {arguments.order}")


class RefundPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Registry[Action]) -> None:
        actions.add("REFUND", Refund)


def _model(continuation: str) -> FakeModel:
    model = FakeModel()
    model.queue("", actions=[("REFUND", {"order": "A1"})])
    model.queue(continuation)
    return model


async def _ask_for_a_refund(fake: FakeDiscord) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice asks in TEXT; the notice the bot sends, and a payload of that message."""
    asked = fake.message(
        channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="refund A1", mentions_bot=True
    )
    fake.dispatch("MESSAGE_CREATE", asked)
    (notice,) = await fake.wait_sent(1)
    assert notice["message_reference"]["message_id"] == int(asked["id"])  # the notice is the reply
    shown = fake.message(
        channel_id=TEXT, guild_id=GUILD, user_id=fake.bot_id, content=notice["content"]
    )
    return notice, shown


async def _press(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    """Dispatch a button press; the interaction callback that answers it."""
    before = len(fake.callbacks)
    fake.dispatch("INTERACTION_CREATE", payload)
    await fake.wait_for(lambda: len(fake.callbacks) > before)
    (answer,) = [c for c in fake.callbacks if c["interaction_id"] == int(payload["id"])]
    return answer


def _refusal(answer: dict[str, Any]) -> str:
    assert answer["type"] == 4  # a message of its own ...
    assert answer["data"]["flags"] & EPHEMERAL  # ... that only the presser sees
    return str(answer["data"]["content"])


async def test_only_an_admin_of_that_guild_approves_and_the_action_runs_once(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    Refund.runs.clear()
    host.register(RefundPlugin(), name="refunds")
    model = _model("The refund went through.")
    async with serve(model=model) as served:
        approvals = served.runtime.approvals
        notice, shown = await _ask_for_a_refund(fake)
        (pending,) = await approvals.list()
        approve = f"carrier-approval:approve:{pending.id}"
        (row,) = notice["components"]
        assert [(b["label"], b["custom_id"]) for b in row["components"]] == [
            ("Approve", approve),
            ("Reject", f"carrier-approval:reject:{pending.id}"),
        ]

        def press(user: int, **where: Any) -> dict[str, Any]:
            where = {"channel_id": TEXT, "guild_id": GUILD, "custom_id": approve, **where}
            return fake.interaction(user_id=user, message=shown, **where)

        # members may not: Bob, and Alice who asked
        for user in (BOB, ALICE):
            assert "may not approve" in _refusal(await _press(fake, press(user)))
        # an admin of the other guild, here (her role there counts for nothing) ...
        carol = press(CAROL, roles=[OTHER_ADMIN_ROLE])
        assert "may not approve" in _refusal(await _press(fake, carol))
        # ... and there, naming this approval (a custom id is no credential)
        carol = press(CAROL, channel_id=OTHER_TEXT, guild_id=OTHER_GUILD, roles=[OTHER_ADMIN_ROLE])
        assert "no such approval here" in _refusal(await _press(fake, carol))
        still = await approvals.get(pending.id)
        assert still is not None
        assert still.status is ApprovalStatus.PENDING
        assert Refund.runs == []
        assert len(model.requests) == 1

        dave = press(DAVE, roles=[ADMIN_ROLE])
        done = await _press(fake, dave)
        assert done["type"] == 7  # the notice is updated ...
        assert done["data"]["components"] == []  # ... without its buttons
        assert done["data"]["content"].startswith(notice["content"])
        assert f"Approved** by user{DAVE}" in done["data"]["content"]
        _, said = await fake.wait_sent(2)
        assert said["content"] == "The refund went through."  # the model's continuation
        assert "message_reference" not in said  # a message of its own, not a second reply

        fake.dispatch("INTERACTION_CREATE", dave)  # the same press again (a gateway replay)
        again = await _press(fake, press(DAVE, roles=[ADMIN_ROLE]))  # and a second press
        assert "approved by discord:15 already" in _refusal(again)
        await asyncio.sleep(0.2)
        decided = await approvals.get(pending.id)
    assert decided is not None
    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by == f"discord:{DAVE}"
    assert decided.done
    assert Refund.runs == [("A1", pending.idempotency_key)]
    assert len(model.requests) == 2
    assert "refunded A1" in str(model.requests[-1].model_dump())
    assert len(fake.sent) == 2
    assert len(fake.callbacks) == 6  # the replayed press got no answer of its own


async def test_reject_button_rejects_and_the_action_never_runs(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    Refund.runs.clear()
    host.register(RefundPlugin(), name="refunds")
    model = _model("Understood, no refund.")
    async with serve(model=model) as served:
        _, shown = await _ask_for_a_refund(fake)
        (pending,) = await served.runtime.approvals.list()
        reject = fake.interaction(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=DAVE,
            roles=[ADMIN_ROLE],
            custom_id=f"carrier-approval:reject:{pending.id}",
            message=shown,
        )
        done = await _press(fake, reject)
        _, said = await fake.wait_sent(2)
        decided = await served.runtime.approvals.get(pending.id)
    assert done["type"] == 7
    assert f"Rejected** by user{DAVE}" in done["data"]["content"]
    assert done["data"]["components"] == []
    assert said["content"] == "Understood, no refund."
    assert decided is not None
    assert decided.status is ApprovalStatus.REJECTED
    assert "rejected" in str(model.requests[-1].model_dump())
    assert Refund.runs == []


async def test_a_private_ask_gets_its_buttons_and_continuation_privately(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    Refund.runs.clear()
    host.register(RefundPlugin(), name="refunds")
    model = _model("The refund went through.")
    async with serve(model=model) as served:
        ask = fake.interaction(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=DAVE,
            roles=[ADMIN_ROLE],
            command="ask",
            options={"question": "refund A1", "private": True},
        )
        fake.dispatch("INTERACTION_CREATE", ask)
        await fake.wait_for(lambda: len(fake.followups) == 1)
        (notice,) = fake.followups
        (pending,) = await served.runtime.approvals.list()
        assert pending.room_id == f"discord:{fake.bot_id}:{TEXT}:private:{DAVE}"
        (row,) = notice["components"]
        approve = next(b["custom_id"] for b in row["components"] if b["label"] == "Approve")
        press = fake.interaction(
            channel_id=TEXT, guild_id=GUILD, user_id=DAVE, roles=[ADMIN_ROLE], custom_id=approve
        )
        done = await _press(fake, press)
        await fake.wait_for(lambda: len(fake.followups) == 2)
        await asyncio.sleep(0.1)
    assert notice["flags"] & EPHEMERAL
    assert done["type"] == 7
    said = fake.followups[1]
    assert said["content"] == "The refund went through."
    assert said["token"] == press["token"]  # the press's follow-up, which only Dave sees
    assert said["flags"] & EPHEMERAL
    assert fake.sent == []  # nothing reached the channel
    assert Refund.runs == [("A1", pending.idempotency_key)]
