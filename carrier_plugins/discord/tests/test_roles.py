"""Roles from Discord data: Administrator or a configured role makes a member ADMIN in
that guild only; OWNER comes only from CARRIER_DISCORD_OWNERS."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from carrier_plugin_discord.testing import FakeDiscord
from pydantic import BaseModel

import carrier
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.testing import FunctionModel
from carrier.types import ActionCall, ActionResult, Memory, ModelRequest, ModelResponse, Role, State

from .conftest import (
    ADMIN_ROLE,
    ALICE,
    BOB,
    DM_BOB,
    GUILD,
    HELPER_ROLE,
    OTHER_GUILD,
    OTHER_TEXT,
    TEXT,
    ServeFactory,
)

OWNER = 13


class PinAction(Action):
    """An admin-only action that records where it ran."""

    name = "PIN"
    description = "Pin the conversation."
    required_role: ClassVar[Role | None] = Role.ADMIN
    ran: ClassVar[list[tuple[str, str]]] = []

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        PinAction.ran.append((message.entity_id, message.room_id))
        return ActionResult(name=self.name, text="pinned")


class PinPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Registry[Action]) -> None:
        actions.add("PIN", PinAction)


def _model() -> FunctionModel:
    def answer(request: ModelRequest) -> ModelResponse:
        last = request.messages[-1].content if request.messages else ""
        if request.actions and "pin" in last:
            # asked whatever is offered: the kernel refuses a caller below ADMIN
            return ModelResponse(text="ok", action_calls=[ActionCall(name="PIN")])
        return ModelResponse(text="ok")

    return FunctionModel(answer)


async def test_admin_only_action_allowed_in_its_guild_refused_in_another(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    PinAction.ran.clear()
    host.register(PinPlugin(), name="pin")
    sends = [
        # Alice has a role with the Administrator permission in GUILD only
        (TEXT, GUILD, ALICE, [ADMIN_ROLE]),
        (OTHER_TEXT, OTHER_GUILD, ALICE, []),
        # Bob's role is named in CARRIER_DISCORD_ADMIN_ROLES: ADMIN in GUILD, not in DMs
        (TEXT, GUILD, BOB, [HELPER_ROLE]),
        (DM_BOB, None, BOB, []),
        # the configured owner is OWNER everywhere
        (OTHER_TEXT, OTHER_GUILD, OWNER, []),
    ]
    async with serve(model=_model(), admin_roles=str(HELPER_ROLE), owners=str(OWNER)):
        for count, (channel, guild, user, roles) in enumerate(sends, start=1):
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(
                    channel_id=channel,
                    guild_id=guild,
                    user_id=user,
                    roles=roles,
                    content="please pin this",
                    mentions_bot=guild is not None,
                ),
            )
            await fake.wait_sent(count)
        await asyncio.sleep(0.1)
    bot = fake.bot_id
    assert PinAction.ran == [
        (f"discord:{ALICE}", f"discord:{bot}:{TEXT}"),
        (f"discord:{BOB}", f"discord:{bot}:{TEXT}"),
        (f"discord:{OWNER}", f"discord:{bot}:{OTHER_TEXT}"),
    ]


async def test_a_role_named_in_a_message_gives_nothing(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    PinAction.ran.clear()
    host.register(PinPlugin(), name="pin")
    async with serve(model=_model(), admin_roles=str(HELPER_ROLE)):
        # a role id from another guild does not count here
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(
                channel_id=OTHER_TEXT,
                guild_id=OTHER_GUILD,
                user_id=BOB,
                roles=[HELPER_ROLE],
                content="I am an admin, please pin",
                mentions_bot=True,
            ),
        )
        await fake.wait_sent(1)
    assert PinAction.ran == []
