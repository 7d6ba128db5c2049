"""HTTP load on ``carrier serve``'s app: 200 concurrent clients, 5,000 messages, 500 rooms.

    python benchmarks/http_load.py --json
    python benchmarks/http_load.py --rate half --json   # open loop at half the server's rps
    python benchmarks/http_load.py --rate 300 --json    # open loop at 300 requests/s

The server (FakeModel, SQLite store of carrier-plugin-sql, rate limit off) runs in a
child process on 127.0.0.1; the load comes from this process over keep-alive HTTP/1.1
connections (a minimal asyncio client, so the client costs little CPU). The same
messages then go through the same loop in-process (``runtime.handle``, same
concurrency, a fresh store) as the baseline. Prints ``requests``, ``errors``,
``p50_ms``, ``p99_ms``, ``rps`` and ``msgs_per_s``; the last line is one JSON object.
The closed-loop target p99 <= 100 ms with 200 clients is retired: by Little's law it
measured only queueing.

``--rate`` adds an open loop, as real users send: requests leave on schedule (``rate``
per second, evenly spaced) whatever the answers' speed, each on a free keep-alive
connection or a new one, and latency counts from each request's scheduled time. With
``half`` the closed-loop run goes first and the open loop runs at half its ``rps``, on
the same server. The JSON then also has ``rate`` and ``open_p50_ms``, ``open_p99_ms``,
``open_errors``, ``open_requests``. Target at ``--rate half``: errors 0, p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _runtime_parts(db: Path) -> tuple[Any, Any, Any]:
    import carrier_plugin_sql.plugin

    from carrier.character import Character
    from carrier.host import PluginHost
    from carrier.settings import CarrierSettings
    from carrier.testing import FakeModel

    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None))
    host.register(carrier_plugin_sql.plugin, name="sql")
    store = host.stores.create("sqlite", url=f"sqlite:///{db}")
    model = FakeModel(default_text="Thanks, noted.", keep_requests=False)
    return host, store, (Character(name="Bench"), model)


async def _serve(db: Path) -> None:
    """Child process: serve one agent and print the port."""
    import uvicorn
    from carrier_plugin_http.app import create_app
    from carrier_plugin_http.hub import AgentHub
    from carrier_plugin_http.settings import HttpSettings

    from carrier.runtime import AgentRuntime

    host, store, (character, model) = _runtime_parts(db)
    await store.open()
    models = {"large": model, "small": model, "embedding": None}
    async with AgentRuntime(character, host=host, store=store, models=models) as runtime:
        settings = HttpSettings(_env_file=None, rate_limit_per_minute=0)
        app = create_app(AgentHub([runtime], host=host), settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, backlog=1024
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await task
    await store.close()


class _Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict[str, Any]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def _work(messages: int, rooms: int) -> list[tuple[int, str]]:
    return [(i, f"bench-room-{i % rooms}") for i in range(messages)]


async def _load(port: int, *, clients: int, messages: int, rooms: int) -> dict[str, Any]:
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in _work(messages, rooms):
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        connection = _Connection(port)
        try:
            while not queue.empty():
                index, room = queue.get_nowait()
                started = time.perf_counter()
                try:
                    status = await connection.post(
                        "/Bench/message",
                        {"text": f"message {index}", "roomId": room, "userId": f"u-{room}"},
                    )
                except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                    status = 0
                    await connection.close()
                    connection = _Connection(port)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += status != 200
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "rps": round(len(latencies) / elapsed, 1),
    }


#: Idle connections older than this are not reused (uvicorn closes them after 5 s).
_KEEP_ALIVE_S = 4.0


async def _open_loop(port: int, *, rate: float, messages: int, rooms: int) -> dict[str, Any]:
    """Send ``messages`` at ``rate`` per second on schedule; latency from the schedule."""
    idle: list[tuple[float, _Connection]] = []
    latencies: list[float] = []
    errors = 0

    async def one(index: int, due: float) -> None:
        nonlocal errors
        room = f"open-room-{index % rooms}"
        connection = None
        while idle and connection is None:
            last_used, candidate = idle.pop()
            if time.perf_counter() - last_used < _KEEP_ALIVE_S:
                connection = candidate
            else:  # the server may be closing it (uvicorn's keep-alive timeout): drop it
                await candidate.close()
        connection = connection or _Connection(port)
        try:
            status = await connection.post(
                "/Bench/message",
                {"text": f"open message {index}", "roomId": room, "userId": f"u-{room}"},
            )
        except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
            status = 0
            await connection.close()
        else:
            idle.append((time.perf_counter(), connection))
        latencies.append((time.perf_counter() - due) * 1000)
        errors += status != 200

    started = time.perf_counter()
    tasks = []
    for index in range(messages):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    for _, connection in idle:
        await connection.close()
    latencies.sort()
    return {
        "rate": round(rate, 1),
        "open_requests": len(latencies),
        "open_errors": errors,
        "open_p50_ms": round(statistics.median(latencies), 2),
        "open_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


async def _in_process(db: Path, *, clients: int, messages: int, rooms: int) -> float:
    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage

    host, store, (character, model) = _runtime_parts(db)
    await store.open()
    models = {"large": model, "small": model, "embedding": None}
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in _work(messages, rooms):
        queue.put_nowait(item)
    async with AgentRuntime(character, host=host, store=store, models=models) as runtime:

        async def client() -> None:
            while not queue.empty():
                index, room = queue.get_nowait()
                incoming = IncomingMessage(
                    text=f"message {index}", room_id=room, user_id=f"u-{room}", source="http"
                )
                reply = await runtime.handle(incoming)
                assert reply.error is None, reply.error

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    await store.close()
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument(
        "--rate",
        help="Also an open loop: requests per second, or 'half' of the closed loop's rps.",
    )
    parser.add_argument("--json", action="store_true", help="Print only the JSON line.")
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(Path(args.serve)))
        return
    shape = {"clients": args.clients, "messages": args.messages, "rooms": args.rooms}
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "CARRIER_DISABLE_PLUGIN_AUTOLOAD": "1"}
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(Path(folder, "http.db"))],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            result = asyncio.run(_load(port, **shape))
            if args.rate:
                rate = result["rps"] / 2 if args.rate == "half" else float(args.rate)
                result.update(
                    asyncio.run(
                        _open_loop(port, rate=rate, messages=args.messages, rooms=args.rooms)
                    )
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
        msgs_per_s = asyncio.run(_in_process(Path(folder, "loop.db"), **shape))
    result["msgs_per_s"] = round(msgs_per_s, 1)
    result["rps_over_msgs_per_s"] = round(result["rps"] / msgs_per_s, 2)
    if not args.json:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
