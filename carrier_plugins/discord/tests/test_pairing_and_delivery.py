"""On SQLite (carrier-plugin-sql): DM pairing approved with ``carrier discord approve``
from another process, the allowlist policy, chunks a previous run left unsent, a long
answer with a code block, and SEND_MESSAGE into another Discord room."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from pathlib import Path

import carrier_plugin_bootstrap.plugin
import carrier_plugin_discord.plugin
import carrier_plugin_sql.plugin
import pytest
from carrier_plugin_discord.testing import FakeDiscord
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.host import PluginHost
from carrier.outbox import Outbox
from carrier.settings import CarrierSettings
from carrier.testing import CliRunner, FakeModel, FunctionModel
from carrier.types import ActionCall, ModelRequest, ModelResponse

from .conftest import ALICE, BOB, DM_ALICE, DM_BOB, GUILD, TEXT, ServeFactory

OWNER = 13
DM_OWNER = 903


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/agents.db"


@pytest.fixture
def carrier_settings(database_url: str) -> CarrierSettings:
    return CarrierSettings(database_url=database_url, _env_file=None)


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"discord": carrier_plugin_discord.plugin, "sql": carrier_plugin_sql.plugin}


async def test_an_approved_user_is_answered_after_pairing(
    serve: ServeFactory,
    fake: FakeDiscord,
    carrier_cli: CliRunner,
    database_url: str,
    tmp_path: Path,
) -> None:
    character_file = tmp_path / "testy.json"
    character_file.write_text(json.dumps({"name": "Testy"}))
    model = FakeModel(default_text="welcome")
    async with (
        SqlStore(database_url) as store,
        serve(store=store, model=model, dm_policy="pairing"),
    ):
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_ALICE, user_id=ALICE, content="hi, can we talk?"),
        )
        (notice,) = await fake.wait_sent(1)
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_ALICE, user_id=ALICE, content="hello again"),
        )
        await asyncio.sleep(0.3)
        assert len(fake.sent) == 1  # told the code once, nothing answered
        assert model.requests == []
        found = re.search(r"carrier discord approve ([A-Z0-9]{8})", str(notice["content"]))
        assert found is not None
        approved = await asyncio.to_thread(
            carrier_cli, "discord", "approve", found.group(1), "-c", str(character_file)
        )
        assert approved.exit_code == 0, approved.stderr
        assert f"Discord user {ALICE}" in approved.stdout
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="now?")
        )
        # Bob is still a stranger: he gets his own code, not Alice's conversation
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_BOB, user_id=BOB, content="me too?")
        )
        await fake.wait_sent(3)
        await asyncio.sleep(0.2)
    by_channel = [(s["channel_id"], s["content"]) for s in fake.sent[1:]]
    assert (DM_ALICE, "welcome") in by_channel
    (bob,) = [text for channel, text in by_channel if channel == DM_BOB]
    assert "pairing code" in bob
    assert found.group(1) not in bob
    assert len(model.requests) == 1


async def test_allowlist_answers_listed_users_and_owners_only(
    serve: ServeFactory, fake: FakeDiscord, database_url: str
) -> None:
    async with (
        SqlStore(database_url) as store,
        serve(store=store, dm_policy="allowlist", allowed_users=str(ALICE), owners=str(OWNER)),
    ):
        for channel, user in ((DM_BOB, BOB), (DM_ALICE, ALICE), (DM_OWNER, OWNER)):
            fake.dispatch(
                "MESSAGE_CREATE", fake.message(channel_id=channel, user_id=user, content="hello")
            )
        await fake.wait_sent(2)
        await asyncio.sleep(0.3)
    assert sorted(s["channel_id"] for s in fake.sent) == [DM_ALICE, DM_OWNER]


async def test_chunks_left_unsent_go_out_first_then_a_long_answer_in_pieces(
    serve: ServeFactory, fake: FakeDiscord, database_url: str
) -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(150)) + "\n```"
    long_answer = (
        ("A sentence of the answer. " * 60)
        + "\n\n"
        + code
        + "\n\n"
        + ("More prose follows here. " * 80)
    )
    assert len(long_answer) > 5000
    async with SqlStore(database_url) as store:
        outbox = Outbox(store, "discord", Character(name="Testy").id)
        bodies = [{"channel_id": DM_BOB, "content": f"part {n}", "reply_to": None} for n in (1, 2)]
        await outbox.put(str(DM_BOB), bodies)
        async with serve(store=store, model=FakeModel(default_text=long_answer)):
            await fake.wait_sent(2)
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(channel_id=DM_ALICE, user_id=ALICE, content="explain"),
            )
            await fake.wait_for(lambda: sum(s["channel_id"] == DM_ALICE for s in fake.sent) >= 3)
            await asyncio.sleep(0.2)
            assert await outbox.pending() == []
    assert [s["content"] for s in fake.sent[:2]] == ["part 1", "part 2"]
    pieces = [s for s in fake.sent if s["channel_id"] == DM_ALICE]
    assert all(len(s["content"]) <= 2000 for s in pieces)
    assert sum(code in s["content"] for s in pieces) == 1
    assert "message_reference" in pieces[0]
    assert all("message_reference" not in s for s in pieces[1:])


async def test_send_message_from_a_dm_reaches_a_channel(
    host: PluginHost, serve: ServeFactory, fake: FakeDiscord, database_url: str
) -> None:
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")
    channel_room = f"discord:{fake.bot_id}:{TEXT}"

    def answer(request: ModelRequest) -> ModelResponse:
        if request.actions and "tell the channel" in request.messages[-1].content:
            call = ActionCall(
                name="SEND_MESSAGE",
                arguments={"text": "The build is green.", "room_id": channel_room},
            )
            return ModelResponse(text="Done.", action_calls=[call])
        return ModelResponse(text="noted")

    async with (
        SqlStore(database_url) as store,
        serve(store=store, model=FunctionModel(answer), owners=str(OWNER)),
    ):
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(
                channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="hello", mentions_bot=True
            ),
        )
        await fake.wait_sent(1)
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(channel_id=DM_OWNER, user_id=OWNER, content="please tell the channel"),
        )
        await fake.wait_for(lambda: any(s["content"] == "The build is green." for s in fake.sent))
        await asyncio.sleep(0.3)
    relayed = [s for s in fake.sent if s["content"] == "The build is green."]
    assert len(relayed) == 1
    assert relayed[0]["channel_id"] == TEXT
    assert "message_reference" not in relayed[0]
    assert any(s["content"] == "Done." and s["channel_id"] == DM_OWNER for s in fake.sent)


async def test_forget_on_sqlite_keeps_other_users_and_rooms(
    serve: ServeFactory, fake: FakeDiscord, database_url: str
) -> None:
    from .conftest import THREAD

    async with SqlStore(database_url) as store, serve(store=store) as served:
        runtime = served.runtime
        for channel, user, text in (
            (TEXT, ALICE, "my cat is Tom"),
            (TEXT, BOB, "my dog is Rex"),
            (THREAD, ALICE, "my fish is Nemo"),
        ):
            fake.dispatch(
                "MESSAGE_CREATE",
                fake.message(
                    channel_id=channel,
                    guild_id=GUILD,
                    user_id=user,
                    content=text,
                    mentions_bot=True,
                ),
            )
        await fake.wait_sent(3)
        confirm = f"carrier-forget:yes:{ALICE}"
        fake.dispatch(
            "INTERACTION_CREATE",
            fake.interaction(channel_id=TEXT, guild_id=GUILD, user_id=ALICE, custom_id=confirm),
        )
        await fake.wait_for(lambda: len(fake.callbacks) == 1)
        texts = [
            m.content.text
            for m in await runtime.store.get_memories(agent_id=runtime.agent_id, limit=100)
        ]
    assert "forgot 2" in fake.callbacks[0]["data"]["content"]
    assert not any("Tom" in t for t in texts)
    assert any("Rex" in t for t in texts)
    assert any("Nemo" in t for t in texts)  # her memories in another room stay
