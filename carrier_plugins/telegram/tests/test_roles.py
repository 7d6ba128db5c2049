"""Roles come from Telegram's data: a group's admins are ADMIN in that group only; OWNER
only for the configured owners, everywhere."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from carrier_plugin_telegram.testing import FakeTelegram
from pydantic import BaseModel

import carrier
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.testing import FunctionModel
from carrier.types import ActionCall, ActionResult, Content, Memory, ModelResponse, Role, State

from .conftest import ServeFactory


class PinNoticeAction(Action):
    name: ClassVar[str] = "PIN_NOTICE"
    description: ClassVar[str] = "Pin a notice (admins only)."
    required_role: ClassVar[Role | None] = Role.ADMIN

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, messages=[Content(text="notice pinned")])


class AdminActions:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Registry[Action]) -> None:
        actions.add("PIN_NOTICE", PinNoticeAction)


@pytest.fixture
def model() -> FunctionModel:
    return FunctionModel(
        lambda request: ModelResponse(text="ok", action_calls=[ActionCall(name="PIN_NOTICE")])
    )


async def test_a_group_admin_acts_in_that_group_only_and_owners_everywhere(
    host: PluginHost, serve: ServeFactory, fake: FakeTelegram, model: FunctionModel
) -> None:
    host.register(AdminActions(), name="admin-actions")
    fake.administrators = {-100: [1, 2], -200: [3]}
    cases = [
        (-100, 2, True),  # an admin of -100, in -100
        (-200, 2, False),  # the same user in -200, where they are no admin
        (-100, 8, False),  # a member
        (-200, 9, True),  # a configured owner, in any group
        (9, 9, True),  # ... and in a direct message
    ]
    async with serve(model=model, owners="9"):
        for chat, user, allowed in cases:
            before = len(fake.sent)
            if chat > 0:
                fake.queue_message(fake.private_message(user_id=user, text="pin the notice"))
            else:
                text, entities = fake.mention("pin the notice")
                fake.queue_message(
                    fake.group_message(chat_id=chat, user_id=user, text=text, entities=entities)
                )
            await fake.wait_sent(before + 1)
            await asyncio.sleep(0.2)
            texts = [s["text"] for s in fake.sent[before:]]
            assert texts == (["ok", "notice pinned"] if allowed else ["ok"]), (chat, user)
