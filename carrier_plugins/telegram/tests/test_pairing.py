"""Direct-message pairing end to end: an unknown user gets a code, an owner approves it
with ``carrier telegram approve CODE`` (another process, the same database), and the
user's messages are answered from then on."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from pathlib import Path

import carrier_plugin_sql.plugin
import carrier_plugin_telegram.plugin
import pytest
from carrier_plugin_sql.store import SqlStore
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.settings import CarrierSettings
from carrier.testing import CliRunner, FakeModel

from .conftest import ServeFactory


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/agents.db"


@pytest.fixture
def carrier_settings(database_url: str) -> CarrierSettings:
    return CarrierSettings(database_url=database_url, _env_file=None)


@pytest.fixture
def carrier_plugins() -> Mapping[str, object]:
    return {"telegram": carrier_plugin_telegram.plugin, "sql": carrier_plugin_sql.plugin}


async def test_an_approved_user_is_answered_after_pairing(
    serve: ServeFactory,
    fake: FakeTelegram,
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
        fake.queue_message(fake.private_message(user_id=7, text="hi, can we talk?"))
        (notice,) = await fake.wait_sent(1)
        fake.queue_message(fake.private_message(user_id=7, text="hello again"))
        await asyncio.sleep(0.5)
        assert len(fake.sent) == 1  # told the code once, nothing answered
        assert model.requests == []
        found = re.search(r"carrier telegram approve ([A-Z0-9]{8})", str(notice["text"]))
        assert found is not None
        code = found.group(1)

        wrong = await asyncio.to_thread(
            carrier_cli, "telegram", "approve", "WRONG123", "-c", str(character_file)
        )
        assert wrong.exit_code == 1
        assert "no waiting pairing code" in wrong.stderr
        approved = await asyncio.to_thread(
            carrier_cli, "telegram", "approve", code, "-c", str(character_file)
        )
        assert approved.exit_code == 0, approved.stderr
        assert "Telegram user 7" in approved.stdout

        fake.queue_message(fake.private_message(user_id=7, text="now?"))
        await fake.wait_sent(2)
    assert fake.sent[1]["text"] == "welcome"
    again = await asyncio.to_thread(
        carrier_cli, "telegram", "approve", code, "-c", str(character_file)
    )
    assert again.exit_code == 1  # a code works once


async def test_allowlist_policy_answers_listed_users_and_owners_only(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    async with serve(dm_policy="allowlist", allowed_users="7", owners="9"):
        for user in (8, 7, 9):
            fake.queue_message(fake.private_message(user_id=user, text="hello"))
        await fake.wait_sent(2)
        await asyncio.sleep(0.3)
    assert sorted(int(str(s["chat_id"])) for s in fake.sent) == [7, 9]
