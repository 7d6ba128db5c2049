"""Bad input gives a precise ``StoreError`` or ``ConfigurationError``, never a driver error."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlean
from carrier_plugin_sql.plugin import build_store
from carrier_plugin_sql.schema import SCHEMA_VERSION
from carrier_plugin_sql.settings import SqlSettings
from carrier_plugin_sql.store import SqlStore
from carrier_plugin_sql.testing import fresh_database

from carrier.errors import ConfigurationError, StoreError
from carrier.types import Memory


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://localhost/db", "its scheme is 'postgres', not 'sqlite'"),
        ("mysql:///x.db", "its scheme is 'mysql'"),
        ("sqlite:/x.db", "has no '://'"),
        ("sqlite:x.db", "has no '://'"),
        ("carrier.db", "has no '://'"),
        ("sqlite://host/x.db", "names a host ('host')"),
        ("sqlite:///somewhere/", "names a folder"),
        ("sqlite:///x.db?bogus=1", "unknown option(s) 'bogus'"),
        ("sqlite:///x.db?vector_search=faiss", "vector_search must be one of"),
        ("sqlite:///x.db?busy_timeout_s=soon", "busy_timeout_s must be a number"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_store(SqlSettings(), url=url)
    assert message in str(caught.value)
    assert "sqlite://" in str(caught.value) or "must be" in str(caught.value)


async def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match="is not a SQLite database or is corrupt") as caught:
        async with SqlStore(f"sqlite:///{path}"):
            pass
    assert str(path) in str(caught.value)
    assert type(caught.value) is StoreError


async def test_damaged_pages(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        for n in range(300):
            await store.create_memory(
                Memory(agent_id="a", entity_id="u", room_id="r", content={"text": "x" * 500 * n})
            )
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(3 * page, len(data) - page, 7 * page):
        data[start : start + page] = os.urandom(page)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):  # noqa: PT012 - open or query may fail
        async with SqlStore(f"sqlite:///{path}") as store:
            await store.get_memories(agent_id="a", room_id="r", limit=1000)
            await store.count_memories(agent_id="a")


async def test_newer_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SqlStore(f"sqlite:///{path}"):
        pass
    conn = sqlean.connect(path)
    with conn:
        conn.execute("UPDATE carrier_meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    newer = f"schema version 99, newer than the version {SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=newer) as caught:
        async with SqlStore(f"sqlite:///{path}"):
            pass
    assert "pip install -U carrier-plugin-sql" in str(caught.value)


async def test_foreign_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlean.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(StoreError, match="not Carrier's"):
        async with SqlStore(f"sqlite:///{path}"):
            pass


async def test_missing_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "carrier.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        await store.set_cache("k", 1)
    assert path.is_file()


async def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="Cannot create the folder"):
        async with SqlStore(f"sqlite:///{tmp_path}/file/carrier.db"):
            pass


async def test_path_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        async with SqlStore(f"sqlite:///{tmp_path}"):
            pass


async def test_not_open() -> None:
    store = SqlStore("sqlite://:memory:")
    with pytest.raises(StoreError, match="is not open"):
        await store.get_memory("x")


_READ_ONLY_CHILD = """
import asyncio, sys
from carrier.errors import StoreError
from carrier_plugin_sql.store import SqlStore

async def main(url):
    try:
        async with SqlStore(url):
            print("OPENED")
    except StoreError as exc:
        print("StoreError:", exc)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("name", ["carrier.db", "sub/carrier.db"])
def test_read_only_directory(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    command = [sys.executable, "-c", _READ_ONLY_CHILD, f"sqlite:///{folder}/{name}"]
    if os.geteuid() == 0:  # root ignores permissions unless it drops the capability
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.fail(
                "Running as root, this test needs capsh to drop CAP_DAC_OVERRIDE: "
                "apt-get install libcap2-bin (.ci/run does)."
            )
        drop = "--drop=cap_dac_override,cap_dac_read_search"
        command = [capsh, drop, "--", "-c", shlex.join(command)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert out.startswith("StoreError:"), out
    assert str(folder) in out
    assert "Cannot write the database" in out or "Cannot create the folder" in out


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/agent.db"
        return
    async with fresh_database(request.getfixturevalue("postgres_url")) as url:
        yield url


async def test_a_message_no_store_can_keep_is_refused_and_the_next_ones_are_answered(
    store_url: str,
) -> None:
    """PostgreSQL refuses a NUL character, UTF-8 cannot encode a lone surrogate: either
    is an ``InputError`` naming the field and the position, before anything is stored,
    and Ada's and Bob's next messages are answered as usual."""
    from carrier import AgentRuntime, PluginHost
    from carrier.errors import InputError
    from carrier.settings import CarrierSettings
    from carrier.testing import FakeModel, prompt_text
    from carrier.types import Attachment, IncomingMessage

    host = PluginHost(
        settings=CarrierSettings(database_url=store_url, plugins="sql", _env_file=None)
    )
    model = FakeModel(keep_requests=True)
    refused = [
        (IncomingMessage(text="a\x00b", user_id="ada", room_id="ada-room"), "text", "NUL", 1),
        (
            IncomingMessage(text="hi", user_id="bob", user_name="B\ud800b", room_id="bob-room"),
            "user_name",
            "lone surrogate (\\ud800)",
            1,
        ),
        (
            IncomingMessage(
                text="see file",
                user_id="ada",
                room_id="ada-room",
                attachments=[Attachment(title="notes\x00.txt")],
            ),
            "attachments[0].title",
            "NUL",
            5,
        ),
        (
            IncomingMessage(
                text="see file",
                user_id="bob",
                room_id="bob-room",
                attachments=[Attachment.model_validate({"exif": {"tags": ["ok", "c\x00"]}})],
            ),
            "attachments[0].exif.tags[1]",
            "NUL",
            1,
        ),
    ]
    async with AgentRuntime(host=host, models={"large": model, "embedding": None}) as runtime:
        for incoming, field, what, position in refused:
            with pytest.raises(InputError) as caught:
                await runtime.handle(incoming)
            message = str(caught.value)
            assert f"The message's {field} holds" in message
            assert what in message
            assert f"at position {position}," in message
        ada = await runtime.handle(IncomingMessage(text="hello", user_id="ada", room_id="ada-room"))
        bob = await runtime.handle(IncomingMessage(text="hey", user_id="bob", room_id="bob-room"))
        assert ada.error is None
        assert bob.error is None
        for room, sent in (("ada-room", "hello"), ("bob-room", "hey")):
            stored = await runtime.store.get_memories(agent_id=runtime.agent_id, room_id=room)
            assert [m.content.text for m in stored if m.entity_id != runtime.agent_id] == [sent]
    prompts = [prompt_text(request) for request in model.requests]
    assert len(prompts) == 2
    assert not any("\x00" in p or "\ud800" in p for p in prompts)


class _Echo:
    """A plugin with one action, ECHO, that answers with its ``text`` argument."""

    @staticmethod
    def action() -> type:
        from pydantic import BaseModel

        from carrier.protocols import Action
        from carrier.types import ActionResult, Content

        class EchoArgs(BaseModel):
            text: str

        class EchoAction(Action):
            name = "ECHO"
            description = "Say the text again."
            parameters = EchoArgs

            async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
                return ActionResult(name=self.name, messages=[Content(text=arguments.text)])

        return EchoAction

    def __init__(self) -> None:
        import carrier

        echo = self.action()

        class Plugin:
            @carrier.hookimpl
            def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
                actions.add("ECHO", echo)

        self.plugin = Plugin()


async def test_a_model_answer_no_store_could_keep_is_cleaned_then_streamed_and_stored(
    store_url: str,
) -> None:
    """A model (or a misbehaving compatible server) that answers with a NUL character
    or a lone surrogate made the run fail on both stores, and recovery failed the same
    way: the answer, its action arguments and what is streamed lose the NULs and get
    U+FFFD for each surrogate. Bob's answer is his own."""
    from carrier import AgentRuntime, PluginHost
    from carrier.settings import CarrierSettings
    from carrier.testing import FakeModel
    from carrier.types import IncomingMessage

    host = PluginHost(
        settings=CarrierSettings(database_url=store_url, plugins="sql", _env_file=None)
    )
    host.register(_Echo().plugin, name="echo")
    model = FakeModel()
    model.queue("an\x00swer \ud800 end", actions=[("ECHO", {"text": "ec\x00ho \udc00"})])
    model.queue("fine, Bob")
    streamed: list[str] = []

    async def on_text(delta: str) -> None:
        streamed.append(delta)

    async with AgentRuntime(host=host, models={"large": model, "embedding": None}) as runtime:
        ada = await runtime.handle(
            IncomingMessage(text="hello", user_id="ada", room_id="ada-room"), on_text=on_text
        )
        bob = await runtime.handle(IncomingMessage(text="hey", user_id="bob", room_id="bob-room"))
        assert ada.error is None
        assert ada.texts == ["answer \ufffd end", "echo \ufffd"]
        assert "".join(streamed) == "answer \ufffd end"
        assert bob.texts == ["fine, Bob"]
        stored = await runtime.store.get_memories(agent_id=runtime.agent_id, room_id="ada-room")
        answers = [m.content.text for m in stored if m.entity_id == runtime.agent_id]
        assert sorted(answers) == ["answer \ufffd end", "echo \ufffd"]
        again = await runtime.stored_reply(ada.message.id)
        assert again is not None
        assert sorted(again.texts) == ["answer \ufffd end", "echo \ufffd"]
