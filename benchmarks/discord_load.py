"""The Discord client under load: 50 channels × 20 messages through a fake gateway.

    python benchmarks/discord_load.py --json

(Not ``discord.py``: a script's folder comes first on ``sys.path``, and a file of that
name would hide the discord.py package it drives.)

One agent (FakeModel, the SQLite store of carrier-plugin-sql) is served by
carrier-plugin-discord's real client (discord.py: gateway WebSocket and REST) under the
kernel's supervisor, against ``carrier_plugin_discord.testing.FakeDiscord`` on
127.0.0.1, which sends no rate-limit headers. Each channel of one guild is a closed
loop: a user mentions the bot, and the channel's next message is dispatched when the
answer to the last one arrived. Latency runs from the moment ``MESSAGE_CREATE`` is
dispatched on the fake gateway to the ``POST /channels/{id}/messages`` that answers it
(the fake model's REST latency, ``--rest-ms``, included). The same messages then go
through the in-process loop (``runtime.handle``, the same 50 rooms concurrently, a
fresh store) as the baseline. Prints ``errors``, ``p50_ms``, ``p99_ms``, ``msgs_per_s``
and ``loop_msgs_per_s``; the last line is one JSON object. Targets: errors 0,
msgs_per_s >= 100, p50_ms <= 20.

``idle_p50_ms`` is the latency of one channel alone (50 messages, a fresh fake and
store, measured first). Under the closed loop of 50 channels each message waits behind
the others (Little's law: latency ≈ channels / throughput), so ``p50_ms`` there is
bounded below by ``channels / msgs_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import carrier_plugin_discord.plugin
from carrier_plugin_discord.testing import FakeDiscord
from carrier_plugin_sql.store import SqlStore

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.services import Supervisor
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FakeModel

GUILD = 100
ANSWER = "Thanks, noted."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def agent(host: PluginHost, store: SqlStore, fake: FakeDiscord | None) -> AgentRuntime:
    secrets = {} if fake is None else fake.settings(slash_commands=False)
    model = FakeModel(default_text=ANSWER, keep_requests=False)
    return AgentRuntime(
        Character(name="Nova", bio=["A benchmark agent."], secrets=secrets),
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )


async def through_discord(
    channels: int, messages: int, folder: Path, rest_s: float
) -> dict[str, object]:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.register(carrier_plugin_discord.plugin, name="discord")
    latencies: list[float] = []
    errors = 0
    async with (
        FakeDiscord(rest_latency_s=rest_s) as fake,
        SqlStore(f"sqlite:///{folder / 'discord.db'}") as store,
    ):
        ids = [1000 + c for c in range(channels)]
        fake.add_guild(GUILD, channels=dict.fromkeys(ids, 0))
        runtime = agent(host, store, fake)
        async with runtime, Supervisor(host, [runtime], only=["discord"]) as supervisor:
            (health,) = supervisor.health()
            async with asyncio.timeout(30):
                while health.state != "running":  # noqa: ASYNC110 - another task's state
                    await asyncio.sleep(0.01)

            async def channel(channel_id: int) -> None:
                nonlocal errors
                for turn in range(messages):
                    dispatched = time.monotonic()
                    fake.dispatch(
                        "MESSAGE_CREATE",
                        fake.message(
                            channel_id=channel_id,
                            guild_id=GUILD,
                            user_id=channel_id + 10_000,
                            content=f"m{turn}",
                            mentions_bot=True,
                        ),
                    )
                    want = turn + 1
                    try:
                        await fake.wait_for(
                            lambda c=channel_id, want=want: len(fake.sent_to(c)) >= want,
                            timeout_s=30,
                        )
                    except TimeoutError:
                        errors += 1
                        continue
                    latencies.append((fake.sent_to(channel_id)[turn]["at"] - dispatched) * 1000)

            started = time.monotonic()
            await asyncio.gather(*(channel(c) for c in ids))
            elapsed = time.monotonic() - started
            errors += sum(1 for s in fake.sent if s.get("content") != ANSWER)
    return {
        "errors": errors,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "msgs_per_s": round(len(latencies) / elapsed, 1),
    }


async def in_process(channels: int, messages: int, folder: Path) -> float:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    async with SqlStore(f"sqlite:///{folder / 'loop.db'}") as store:
        runtime = agent(host, store, None)
        async with runtime:

            async def channel(index: int) -> None:
                for turn in range(messages):
                    await runtime.handle(
                        IncomingMessage(
                            text=f"m{turn}", user_id=f"u{index}", room_id=f"discord-{index}"
                        )
                    )

            started = time.monotonic()
            await asyncio.gather(*(channel(c) for c in range(channels)))
            return channels * messages / (time.monotonic() - started)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    rest_s = args.rest_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "idle").mkdir()
        (Path(tmp) / "load").mkdir()
        idle = await through_discord(1, 50, Path(tmp) / "idle", rest_s)
        figures = await through_discord(args.channels, args.messages, Path(tmp) / "load", rest_s)
        loop_rate = await in_process(args.channels, args.messages, Path(tmp))
    return {
        "benchmark": "discord",
        "channels": args.channels,
        "messages": args.channels * args.messages,
        "rest_ms": args.rest_ms,
        **figures,
        "idle_p50_ms": idle["p50_ms"],
        "loop_msgs_per_s": round(loop_rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20, help="per channel")
    parser.add_argument(
        "--rest-ms", type=float, default=0.0, help="the fake's answer time per message sent"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if not args.json:
        print(
            f"{result['messages']} messages over {args.channels} channels: "
            f"errors={result['errors']} p50={result['p50_ms']} ms p99={result['p99_ms']} ms "
            f"{result['msgs_per_s']} msgs/s (in-process loop: {result['loop_msgs_per_s']})",
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
