"""Slash commands: registered per guild, ``/ask`` answered through the interaction
callback and follow-ups, ``/forget`` forgetting only the asking user's memories in
that room after confirmation."""

from __future__ import annotations

from carrier_plugin_discord.testing import FakeDiscord

from carrier.testing import FakeModel

from .conftest import ALICE, BOB, GUILD, OTHER_GUILD, TEXT, ServeFactory

EPHEMERAL = 1 << 6


async def test_commands_are_registered_in_each_guild(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve():
        await fake.wait_for(lambda: len(fake.commands) == 2)
    assert set(fake.commands) == {GUILD, OTHER_GUILD}
    assert {c["name"] for c in fake.commands[GUILD]} == {"ask", "forget"}


async def test_ask_answers_publicly_or_privately(serve: ServeFactory, fake: FakeDiscord) -> None:
    model = FakeModel(default_text="forty-two")
    async with serve(model=model) as served:
        public = fake.interaction(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=ALICE,
            command="ask",
            options={"question": "meaning of life?"},
        )
        private = fake.interaction(
            channel_id=TEXT,
            guild_id=GUILD,
            user_id=BOB,
            command="ask",
            options={"question": "my secret?", "private": True},
        )
        fake.dispatch("INTERACTION_CREATE", public)
        fake.dispatch("INTERACTION_CREATE", private)
        await fake.wait_for(lambda: len(fake.followups) == 2)
        stored = await served.runtime.store.get_memory(
            f"discord:{fake.bot_id}:{TEXT}:{public['id']}"
        )
    callbacks = {c["interaction_id"]: c for c in fake.callbacks}
    assert callbacks[int(public["id"])]["type"] == 5  # deferred: "thinking…"
    assert not callbacks[int(public["id"])].get("data", {}).get("flags", 0) & EPHEMERAL
    assert callbacks[int(private["id"])]["data"]["flags"] & EPHEMERAL
    followups = {f["token"]: f for f in fake.followups}
    assert followups[public["token"]]["content"] == "forty-two"
    assert followups[private["token"]]["flags"] & EPHEMERAL
    assert stored is not None
    assert stored.content.text == "meaning of life?"
    assert stored.entity_id == f"discord:{ALICE}"
    assert fake.sent == []  # answered through the interaction, not as channel messages


async def test_forget_asks_then_forgets_only_the_users_memories_in_that_room(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        runtime = served.runtime
        for user, text in ((ALICE, "my cat is Tom"), (BOB, "my dog is Rex")):
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(
                    channel_id=TEXT, guild_id=GUILD, user_id=user, content=text, mentions_bot=True
                ),
            )
        await fake.wait_sent(2)
        fake.dispatch(
            "INTERACTION_CREATE",
            fake.interaction(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, command="forget"),
        )
        await fake.wait_for(lambda: len(fake.callbacks) == 1)
        question = fake.callbacks[0]
        assert question["data"]["flags"] & EPHEMERAL
        buttons = question["data"]["components"][0]["components"]
        confirm = next(b["custom_id"] for b in buttons if b["label"] == "Forget")
        # Bob pressing Alice's button forgets nothing
        fake.dispatch(
            "INTERACTION_CREATE",
            fake.interaction(channel_id=TEXT, guild_id=GUILD, user_id=BOB, custom_id=confirm),
        )
        await fake.wait_for(lambda: len(fake.callbacks) == 2)
        fake.dispatch(
            "INTERACTION_CREATE",
            fake.interaction(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, custom_id=confirm),
        )
        await fake.wait_for(lambda: len(fake.callbacks) == 3)
        left = await runtime.store.get_memories(
            agent_id=runtime.agent_id, room_id=f"discord:{fake.bot_id}:{TEXT}"
        )
    assert "not yours" in fake.callbacks[1]["data"]["content"]
    done = fake.callbacks[2]
    assert done["type"] == 7  # the confirmation message is updated
    assert "forgot 2" in done["data"]["content"]  # her message and the answer to it
    texts = [m.content.text for m in left]
    assert "@Testy my dog is Rex" in texts
    assert not any("Tom" in t for t in texts)
    assert all(m.entity_id != f"discord:{ALICE}" for m in left)
