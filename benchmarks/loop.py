"""Per-message latency of the full loop with the FakeModel.

    python benchmarks/loop.py --json                       # in-memory store
    python benchmarks/loop.py --store sqlite --json        # SQLite file in a temp dir (WAL)
    python benchmarks/loop.py --store sqlite --preload 100000 --json

Pushes MESSAGES messages over ROOMS rooms through ``AgentRuntime.handle`` (every stage:
connect, store, should-respond, state, context, model, actions, evaluators, remember),
round-robin, each room's client waiting for its answer before sending the next. Plugins
installed in the environment are loaded as usual; the model is the FakeModel (instant) and
embeddings are off, so the figures are the framework's own overhead. The last line is one
JSON object: store, messages, preload, p50_ms, p99_ms, msgs_per_s, turn10_ms, turn200_ms
(one room's mean latency over turns 5-15 and 195-205, averaged over rooms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FakeModel
from carrier.types import Content, Memory


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def preload(runtime: AgentRuntime, count: int) -> None:
    """Store ``count`` memories in 1,000 other rooms of the same agent."""
    for index in range(count):
        await runtime.store.create_memory(
            Memory(
                agent_id=runtime.agent_id,
                entity_id=f"old-user-{index % 500}",
                room_id=f"old-room-{index % 1000}",
                content=Content(text=f"old message number {index} about nothing in particular"),
                created_at=1_600_000_000 + index,
            )
        )


async def run(args: argparse.Namespace, url: str) -> dict[str, object]:
    host = PluginHost(settings=CarrierSettings(database_url=url, _env_file=None))
    model = FakeModel(default_text="Thanks, noted.")
    runtime = AgentRuntime(host=host, models={"large": model, "small": model, "embedding": None})
    latencies: list[float] = []
    per_room: dict[int, list[float]] = {r: [] for r in range(args.rooms)}
    async with runtime:
        if args.preload:
            await preload(runtime, args.preload)
        turns = args.messages // args.rooms
        # warm up caches and code paths in rooms not measured
        for index in range(50):
            await runtime.handle(IncomingMessage(text="warm up", user_id="w", room_id=f"w{index}"))
        gc.collect()
        started = time.perf_counter()
        for turn in range(turns):
            for room in range(args.rooms):
                incoming = IncomingMessage(
                    text=f"message {turn} in room {room}",
                    user_id=f"user-{room}",
                    user_name=f"User {room}",
                    room_id=f"bench-room-{room}",
                )
                t0 = time.perf_counter()
                reply = await runtime.handle(incoming)
                elapsed = (time.perf_counter() - t0) * 1000
                if reply.error or not reply.texts:
                    raise SystemExit(f"benchmark message failed: {reply.error}")
                latencies.append(elapsed)
                per_room[room].append(elapsed)
        total = time.perf_counter() - started

    def around(turn: int) -> float:
        window = [v for lat in per_room.values() for v in lat[max(0, turn - 5) : turn + 6]]
        return statistics.fmean(window)

    return {
        "store": args.store,
        "messages": len(latencies),
        "rooms": args.rooms,
        "preload": args.preload,
        "p50_ms": round(percentile(latencies, 0.50), 4),
        "p99_ms": round(percentile(latencies, 0.99), 4),
        "msgs_per_s": round(len(latencies) / total, 1),
        "turn10_ms": round(around(10), 4),
        "turn200_ms": round(around(200), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--preload", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Only the JSON line.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'bench.db'}"
        result = asyncio.run(run(args, url))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>12}: {value}", file=sys.stderr)
        ratio = result["turn200_ms"] / result["turn10_ms"]  # type: ignore[operator]
        print(f"turn200/turn10: {ratio:.3f}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
