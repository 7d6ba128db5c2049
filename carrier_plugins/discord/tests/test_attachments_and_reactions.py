"""Attachments in (text inline within limits) and out (uploaded files); reactions seen
as events and added with REACT."""

from __future__ import annotations

import asyncio

import carrier_plugin_bootstrap.plugin
from carrier_plugin_discord.testing import FakeDiscord
from pydantic import BaseModel

import carrier
from carrier.host import PluginHost
from carrier.protocols import Action
from carrier.registry import Registry
from carrier.runtime import AgentRuntime
from carrier.testing import FunctionModel
from carrier.types import (
    ActionCall,
    ActionResult,
    Attachment,
    Content,
    Memory,
    ModelRequest,
    ModelResponse,
    State,
)

from .conftest import ALICE, BOB, DM_ALICE, DM_BOB, GUILD, TEXT, ServeFactory


async def test_a_text_attachment_reaches_the_model_inline_a_large_one_does_not(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")  # its attachments section
    seen: list[str] = []

    def answer(request: ModelRequest) -> ModelResponse:
        seen.append("\n".join([request.system or "", *(m.content for m in request.messages)]))
        return ModelResponse(text="read it")

    notes = fake.attachment("notes.txt", b"the launch code is 4242", content_type="text/plain")
    big = fake.attachment("big.txt", b"x" * 5000, content_type="text/plain")
    async with serve(model=FunctionModel(answer), attachment_text_bytes=1000) as served:
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(
                channel_id=DM_ALICE, user_id=ALICE, content="see file", attachments=[notes]
            ),
        )
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_BOB, user_id=BOB, content="and mine", attachments=[big]),
        )
        await fake.wait_sent(2)
        memories = await served.runtime.store.get_memories(
            agent_id=served.runtime.agent_id, entity_id=f"discord:{BOB}"
        )
    alice_prompt = next(p for p in seen if "see file" in p)
    assert "the launch code is 4242" in alice_prompt
    bob_prompt = next(p for p in seen if "and mine" in p)
    assert "launch code" not in bob_prompt  # what Alice sent never reaches Bob's prompt
    (bob_message,) = [m for m in memories if m.content.text == "and mine"]
    (attachment,) = bob_message.content.attachments
    assert attachment.title == "big.txt"
    assert attachment.text is None
    assert attachment.size == 5000


class ExportAction(Action):
    name = "EXPORT"
    description = "Send the notes as a file."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        file = Attachment(
            title="notes.md", text="# Notes\n\nfor you only", content_type="text/markdown"
        )
        return ActionResult(
            name=self.name, messages=[Content(text="Here are your notes.", attachments=[file])]
        )


class ExportPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Registry[Action]) -> None:
        actions.add("EXPORT", ExportAction)


async def test_a_file_the_agent_sends_is_uploaded(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    host.register(ExportPlugin(), name="export")

    def answer(request: ModelRequest) -> ModelResponse:
        if request.actions and "export" in request.messages[-1].content:
            return ModelResponse(text="", action_calls=[ActionCall(name="EXPORT")])
        return ModelResponse(text="nothing to export")

    async with serve(model=FunctionModel(answer)):
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_ALICE, user_id=ALICE, content="export please"),
        )
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_BOB, user_id=BOB, content="hello")
        )
        await fake.wait_sent(2)
        await asyncio.sleep(0.1)
    by_channel = {s["channel_id"]: s for s in fake.sent}
    alice = by_channel[DM_ALICE]
    assert alice["content"] == "Here are your notes."
    assert alice["files"] == [{"filename": "notes.md", "data": b"# Notes\n\nfor you only"}]
    assert "files" not in by_channel[DM_BOB]


async def test_a_reaction_is_seen_and_react_adds_one(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord
) -> None:
    def answer(request: ModelRequest) -> ModelResponse:
        last = request.messages[-1].content if request.messages else ""
        if request.actions and "great news" in last:
            call = ActionCall(name="REACT", arguments={"emoji": "🎉"})
            return ModelResponse(text="Congratulations!", action_calls=[call])
        return ModelResponse(text="ok")

    async with serve(model=FunctionModel(answer)) as served:
        news = fake.message(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=ALICE,
            content="great news, we shipped",
            mentions_bot=True,
        )
        fake.dispatch("MESSAGE_CREATE", news)
        await fake.wait_sent(1)
        await fake.wait_for(lambda: len(fake.reactions) == 1)
        fake.dispatch(
            "MESSAGE_REACTION_ADD",
            fake.reaction(
                channel_id=TEXT, guild_id=GUILD, message_id=int(news["id"]), user_id=BOB, emoji="👍"
            ),
        )
        # the bot's own reaction coming back from the gateway is not an event for it
        fake.dispatch(
            "MESSAGE_REACTION_ADD",
            fake.reaction(
                channel_id=TEXT,
                guild_id=GUILD,
                message_id=int(news["id"]),
                user_id=fake.bot_id,
                emoji="🎉",
            ),
        )
        room = f"discord:{fake.bot_id}:{TEXT}"
        runtime = served.runtime

        async def reactions() -> list[Memory]:
            found = await runtime.store.get_memories(agent_id=runtime.agent_id, room_id=room)
            return [m for m in found if "reaction" in m.metadata.get("discord", {})]

        async with asyncio.timeout(5):
            while not await reactions():  # noqa: ASYNC110 - the store, polled
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        (seen,) = await reactions()
    assert fake.reactions == [(TEXT, int(news["id"]), "🎉")]
    assert seen.entity_id == f"discord:{BOB}"
    assert seen.content.in_reply_to == f"discord:{fake.bot_id}:{TEXT}:{news['id']}"
    assert "👍" in seen.content.text
    assert len(fake.sent) == 1  # a reaction is seen, never answered
