"""Clients as supervised services: which agents each serves, one instance per key,
health, crash isolation with restarts, graceful stop, the outbox, ``carrier start``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.cli import main
from carrier.outbox import Deliveries, Outbox
from carrier.services import Client, ServiceHealth, Supervisor, serves
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel
from carrier.testing.distributions import plugin_distribution
from carrier.types import Content


class QueueClient(Client):
    """A platform made of queues: one per token; answers land in ``sent``."""

    name = "queue"
    inboxes: ClassVar[dict[str, asyncio.Queue[IncomingMessage]]] = {}
    sent: ClassVar[list[tuple[str, str, str]]] = []  # (token, room, text)
    runs: ClassVar[list[str]] = []
    crash_first: ClassVar[set[str]] = set()
    stopped: ClassVar[list[str]] = []

    def select(self, runtimes: Sequence[AgentRuntime]) -> dict[str, list[AgentRuntime]]:
        groups: dict[str, list[AgentRuntime]] = {}
        for runtime in runtimes:
            token = runtime.character.settings.get("QUEUE_TOKEN")
            if token:
                groups.setdefault(str(token), []).append(runtime)
        return groups

    async def run(self, runtimes: Sequence[AgentRuntime], health: ServiceHealth) -> None:
        token = str(runtimes[0].character.settings["QUEUE_TOKEN"])
        self.runs.append(token)
        inbox = self.inboxes.setdefault(token, asyncio.Queue())
        health.ready(f"reading queue {token}")
        if token in self.crash_first:
            self.crash_first.discard(token)
            raise ConnectionError("the platform hung up")
        try:
            while True:
                incoming = await inbox.get()
                reply = await runtimes[0].handle(incoming)
                self.sent.extend((token, incoming.room_id or "", t) for t in reply.texts)
        finally:
            self.stopped.append(token)


class QueuePlugin:
    @carrier.hookimpl
    def carrier_register_clients(self, clients: Any) -> None:
        clients.add("queue", QueueClient, description="Queues as a chat platform.")


@pytest.fixture(autouse=True)
def fresh_queues() -> None:
    QueueClient.inboxes.clear()
    QueueClient.sent.clear()
    QueueClient.runs.clear()
    QueueClient.crash_first.clear()
    QueueClient.stopped.clear()


MODELS: dict[str, FakeModel] = {}


def agent(host: PluginHost, name: str, **fields: Any) -> AgentRuntime:
    model = MODELS[name] = FakeModel(default_text=f"{name} here.")
    return AgentRuntime(
        Character(name=name, bio=[f"{name}."], **fields),
        host=host,
        store=InMemoryStore(),
        models={"large": model, "small": model, "embedding": None},
    )


@pytest.fixture
def queue_host() -> PluginHost:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.register(QueuePlugin(), name="queue")
    return host


async def wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_characters_clients_list_decides_in_any_spelling(queue_host: PluginHost) -> None:
    listed = agent(queue_host, "Ada", clients=["@elizaos/client-queue"])
    unlisted = agent(queue_host, "Bob", clients=["discord"])
    silent = agent(queue_host, "Cy", clients=[])
    default = agent(queue_host, "Dee")
    assert serves("queue", listed)
    assert not serves("queue", unlisted)
    assert not serves("queue", silent)  # present and empty: no client
    assert serves("queue", default)  # absent: every configured client
    assert serves("http", agent(queue_host, "Eve", clients=["direct"]))  # ElizaOS's REST client


async def test_one_instance_per_key_serves_its_agents_users_apart(queue_host: PluginHost) -> None:
    ada = agent(queue_host, "Ada", settings={"QUEUE_TOKEN": "t-ada"})
    bob = agent(queue_host, "Bob", settings={"QUEUE_TOKEN": "t-bob"})
    off = agent(queue_host, "Cy")  # no token: not served
    async with ada, bob, off, Supervisor(queue_host, [ada, bob, off]) as supervisor:
        assert [h.name for h in supervisor.health()] == ["queue:t-ada", "queue:t-bob"]
        await wait_for(lambda: all(h.state == "running" for h in supervisor.health()))
        QueueClient.inboxes["t-ada"].put_nowait(
            IncomingMessage(text="hi, I'm Alice", user_id="alice", room_id="dm-alice")
        )
        QueueClient.inboxes["t-ada"].put_nowait(
            IncomingMessage(text="hi, I'm Bruno", user_id="bruno", room_id="dm-bruno")
        )
        QueueClient.inboxes["t-bob"].put_nowait(
            IncomingMessage(text="hello", user_id="alice", room_id="dm-alice")
        )
        await wait_for(lambda: len(QueueClient.sent) == 3)
    assert sorted(QueueClient.sent) == [
        ("t-ada", "dm-alice", "Ada here."),
        ("t-ada", "dm-bruno", "Ada here."),
        ("t-bob", "dm-alice", "Bob here."),
    ]
    # Alice's words never reached Bruno's prompt
    bruno = next(r for r in MODELS["Ada"].requests if "Bruno" in r.messages[-1].content)
    assert all("Alice" not in m.content for m in bruno.messages)
    assert sorted(QueueClient.stopped) == ["t-ada", "t-bob"]
    assert all(h.state == "stopped" for h in supervisor.health())


async def test_a_crashed_instance_restarts_fresh_and_the_others_keep_serving(
    queue_host: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    QueueClient.crash_first.add("t-ada")
    ada = agent(queue_host, "Ada", settings={"QUEUE_TOKEN": "t-ada"})
    bob = agent(queue_host, "Bob", settings={"QUEUE_TOKEN": "t-bob"})
    async with (
        ada,
        bob,
        Supervisor(queue_host, [ada, bob], backoff_initial_s=0.01) as supervisor,
    ):
        health = {h.name: h for h in supervisor.health()}
        await wait_for(lambda: QueueClient.runs.count("t-ada") == 2)
        await wait_for(lambda: health["queue:t-ada"].state == "running")
        QueueClient.inboxes["t-ada"].put_nowait(IncomingMessage(text="x", user_id="u", room_id="r"))
        QueueClient.inboxes["t-bob"].put_nowait(IncomingMessage(text="y", user_id="u", room_id="r"))
        await wait_for(lambda: len(QueueClient.sent) == 2)
        assert health["queue:t-ada"].restarts == 1
        assert health["queue:t-bob"].restarts == 0
    assert QueueClient.runs.count("t-bob") == 1
    assert "Client queue:t-ada crashed (ConnectionError: the platform hung up)" in caplog.text


async def test_the_outbox_keeps_unsent_chunks_in_order_across_a_restart() -> None:
    store = InMemoryStore()
    outbox = Outbox(store, "queue", "agent-1")
    first = await outbox.put("chat-1", [{"text": "part 1"}, {"text": "part 2"}])
    await outbox.put("chat-2", [{"text": "other chat"}])
    await outbox.put("chat-1", [{"text": "part 3"}])
    await outbox.sent(first[0])
    # a new process: another Outbox on the same store
    again = Outbox(store, "queue", "agent-1")
    pending = await again.pending()
    assert [(i.chat, i.body["text"]) for i in pending] == [
        ("chat-1", "part 2"),
        ("chat-2", "other chat"),
        ("chat-1", "part 3"),
    ]
    for item in pending:
        await again.sent(item)
    assert await again.pending() == []
    assert await Outbox(store, "queue", "agent-2").pending() == []  # per agent


async def test_the_delivery_loop_stops_when_cancelled_as_a_wake_up_arrives() -> None:
    """A client stopping while the agent sends to one of its rooms: the wake-up and the
    cancellation land in the same loop turn, and the loop must still end (it kept
    going on Python 3.11 with ``wait_for``, so the client's drain never returned)."""
    deliveries = Deliveries(InMemoryStore(), "queue", "agent-1")
    wake = asyncio.Event()
    delivered: list[int] = []

    async def deliver() -> int:
        delivered.append(1)
        return 0

    task = deliveries.serve(deliver, wake, poll_s=60)
    await asyncio.sleep(0)  # the loop is waiting for a wake-up
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done
    assert task.cancelled()
    assert delivered == []


def test_start_without_an_enabled_client_says_what_to_configure(
    queue_host: PluginHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_DATABASE_URL", "memory://")
    monkeypatch.setenv("CARRIER_MODEL_LARGE", "echo")
    monkeypatch.setenv("CARRIER_MODEL_EMBEDDING", "none")
    assert main(["start"], host=queue_host) == 1
    assert "no client is enabled for Nova" in capsys.readouterr().err
    assert main(["start", "--clients", "telegram"], host=queue_host) == 1
    assert "no client named 'telegram'; installed clients: queue" in capsys.readouterr().err


FILE_CLIENT = textwrap.dedent('''
    """A client that reads messages from a folder and writes answers next to them."""
    import asyncio, os
    from pathlib import Path
    import carrier
    from carrier.services import Client
    from carrier.types import IncomingMessage

    FOLDER = Path(os.environ["FILES_DIR"])

    class FileClient(Client):
        name = "files"
        async def run(self, runtimes, health):
            (FOLDER / "ready").write_text("ready")
            health.ready()
            try:
                while True:
                    for path in sorted(FOLDER.glob("*.in")):
                        text = path.read_text()
                        path.unlink()
                        incoming = IncomingMessage(
                            text=text, user_id="u1", room_id="r1", message_id=path.stem
                        )
                        reply = await runtimes[0].handle(incoming)
                        (FOLDER / f"{path.stem}.out").write_text("\\n".join(reply.texts))
                    await asyncio.sleep(0.02)
            finally:
                (FOLDER / "stopped").write_text("stopped")

    @carrier.hookimpl
    def carrier_register_clients(clients):
        clients.add("files", FileClient, description="Messages as files.")
''')


def test_carrier_start_serves_until_sigterm_and_stops_gracefully(tmp_path: Path) -> None:
    site = plugin_distribution(tmp_path / "site", "files", FILE_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        PYTHONPATH=str(site),
        FILES_DIR=str(tmp_path),
        CARRIER_PLUGINS="files",
        CARRIER_DATABASE_URL="memory://",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_EMBEDDING="none",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "carrier", "start"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (tmp_path / "m1.in").write_text("hello there")
        while not (tmp_path / "m1.out").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert (tmp_path / "m1.out").read_text() == "You said: hello there"
    assert (tmp_path / "stopped").read_text() == "stopped"
    assert "carrier start: Nova on files:default" in err


async def test_a_listener_hears_what_the_agent_sends_and_a_failing_one_is_contained(
    queue_host: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[tuple[str, str | None]] = []

    async def deliver(event: Any) -> None:
        heard.append((event.type.value, event.room_id))

    def broken(event: Any) -> None:
        raise RuntimeError("listener bug")

    async with agent(queue_host, "Ada") as ada:
        stop = ada.listen(deliver)
        ada.listen(broken)
        await ada.send_message("queue:chat-9", Content(text="news for chat 9"))
        stop()
        await ada.send_message("queue:chat-9", Content(text="not heard"))
    assert heard == [("message_sent", "queue:chat-9")]
    assert "A listener of message_sent events failed" in caplog.text
