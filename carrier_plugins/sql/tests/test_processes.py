"""Two processes on one file, and a writer killed with SIGKILL."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import sqlean
from carrier_plugin_sql.store import SqlStore

_WRITER = """
import asyncio, sys
from carrier.types import Content, Memory
from carrier_plugin_sql.store import SqlStore

async def main(url, prefix, count, dim):
    async with SqlStore(url) as store:
        for n in range(count):
            memory = Memory(
                id=f"{prefix}-{n}", agent_id="agent", entity_id=prefix, room_id="room",
                content=Content(text=f"{prefix} says {n}"),
                embedding=[float(n % 7), 1.0, float(len(prefix))] if dim else None,
            )
            assert await store.create_memory(memory)
            print(memory.id, flush=True)
            if n % 50 == 0:
                await store.search_memories(agent_id="agent", embedding=[1.0, 1.0, 1.0])
                await store.get_memories(agent_id="agent", room_id="room", limit=32)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


def _writer(url: str, prefix: str, count: int, *, embed: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, prefix, str(count), str(int(embed))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_two_processes_write_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    children = [_writer(url, f"p{i}", 400, embed=i == 0) for i in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err
        assert len(out.split()) == 400
    async with SqlStore(url) as store:
        assert await store.count_memories(agent_id="agent") == 800
        found = await store.get_memories(agent_id="agent", room_id="room", limit=1000)
        assert sorted(m.id for m in found) == sorted(
            f"p{i}-{n}" for i in range(2) for n in range(400)
        )
        hits = await store.search_memories(agent_id="agent", embedding=[1.0, 1.0, 2.0], limit=400)
        assert len(hits) == 400


async def test_sigkill_mid_write_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    stop_after = random.randint(20, 600)
    child = _writer(url, "m", 1000, embed=False)
    assert child.stdout is not None
    acknowledged: list[str] = []
    for line in child.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) == stop_after:
            child.send_signal(signal.SIGKILL)
            break
    # Lines printed before the kill landed: read through the file object, whose
    # buffer may hold some already (communicate() would read past them).
    acknowledged += child.stdout.read().split()
    child.stdout.close()
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) < 1000

    conn = sqlean.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = [row[0] for row in conn.execute("SELECT id FROM memories")]
    finally:
        conn.close()
    assert len(ids) == len(set(ids))
    assert set(acknowledged) <= set(ids)
    assert len(ids) - len(acknowledged) <= 1  # at most the one in flight

    async with SqlStore(url) as store:  # and the store reopens and works
        assert await store.count_memories(agent_id="agent") == len(ids)
        assert len(await store.unanswered_messages(agent_id="agent", limit=2000)) == len(ids)
