"""A runtime killed with SIGKILL mid-run loses no accepted message, and a restart
answers each stored-but-unanswered message exactly once (SQLite store)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from carrier import AgentRuntime, PluginHost
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel

CHILD = textwrap.dedent("""
    import asyncio, sys
    import carrier
    from carrier import AgentRuntime, IncomingMessage, PluginHost
    from carrier.settings import CarrierSettings
    from carrier.testing import FakeModel

    class Acks:
        @carrier.hookimpl
        def carrier_on_event(self, event):
            if event.type == "message_stored":
                print("STORED", event.message_id, flush=True)

    async def main(url):
        host = PluginHost(settings=CarrierSettings(database_url=url, plugins="sql",
                                                   _env_file=None))
        host.register(Acks(), name="acks")
        model = FakeModel(latency_s=0.002)
        async with AgentRuntime(host=host, models={"large": model, "embedding": None}) as rt:
            async def room(r):  # five rooms at once: several messages in flight at any time
                for n in range(r, 1000, 5):
                    await rt.handle(IncomingMessage(text=f"message {n}", user_id=f"u{r}",
                                                    room_id=f"room-{r}", message_id=f"m{n}"))
            await asyncio.gather(*(room(r) for r in range(5)))
        print("DONE", flush=True)

    asyncio.run(main(sys.argv[1]))
""")


def test_sigkill_loses_nothing_and_restart_answers_each_message_once(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    url = f"sqlite:///{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    kill_after = random.randint(50, 900)
    deadline = time.monotonic() + 120
    while len(acknowledged) < kill_after and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        if line.startswith("STORED "):
            acknowledged.append(line.split()[1])
    child.send_signal(signal.SIGKILL)
    rest, errors = child.communicate(timeout=30)
    acknowledged += [line.split()[1] for line in rest.splitlines() if line.startswith("STORED ")]
    assert child.returncode == -signal.SIGKILL, errors
    assert len(acknowledged) >= kill_after

    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = connection.execute(
            "SELECT id FROM memories WHERE id LIKE 'm%' AND id NOT LIKE '%-%'"
        ).fetchall()
    stored = [row[0] for row in rows]
    assert len(stored) == len(set(stored))  # none twice
    assert set(acknowledged) <= set(stored)  # every acknowledged message is there

    async def restart() -> tuple[int, int, int]:
        host = PluginHost(settings=CarrierSettings(database_url=url, plugins="sql", _env_file=None))
        model = FakeModel()
        async with AgentRuntime(host=host, models={"large": model, "embedding": None}) as rt:
            pending = await rt.store.unanswered_messages(agent_id=rt.agent_id, limit=5000)
            replies = await rt.recover(limit=5000)
            # a run's lease is released once its evaluators ran, after its reply came
            await asyncio.gather(*(reply.evaluated() for reply in replies))
            again = await rt.recover(limit=5000)
            for message_id in stored:
                assert await rt.store.get_memory(f"{message_id}-{rt.agent_id}") is not None
            answered_twice = len(model.requests) - len(pending)
        assert all(r.texts == ["ok"] for r in replies)
        assert again == []  # nothing left over: every run ended, its lease released
        # runs cut off after their answer was stored come back as duplicates (their
        # evaluators and lease finished); the unanswered ones get their first answer
        answered = [r for r in replies if not r.duplicate]
        return len(pending), len(answered), answered_twice

    pending, recovered, extra = asyncio.run(restart())
    assert pending >= 1  # the kill caught messages stored but not yet answered
    assert recovered == pending  # each unanswered message answered once, then nothing
    assert extra == 0
