"""The Telegram client under load: 50 chats × 20 messages from a fake Bot API server.

    python benchmarks/telegram_load.py --json

(Not ``telegram.py``: a script's folder comes first on ``sys.path``, and a file of
that name would hide the python-telegram-bot package it drives.)

One agent (FakeModel, the SQLite store of carrier-plugin-sql) is served by
carrier-plugin-telegram's real client (python-telegram-bot, long polling) under the
kernel's supervisor, against ``carrier_plugin_telegram.testing.FakeTelegram`` on
127.0.0.1, which sends no rate limits. Each chat is a closed loop: it sends its next
message when the answer to the last one arrived. Latency runs from the moment the
update is queued on the fake server to the ``sendMessage`` call that answers it. The
same messages then go through the in-process loop (``runtime.handle``, the same 50
chats concurrently, a fresh store) as the baseline. Prints ``errors``, ``p50_ms``,
``p99_ms``, ``msgs_per_s`` and ``loop_msgs_per_s``; the last line is one JSON object.
Targets: errors 0, msgs_per_s >= 100, p50_ms <= 20.

``idle_p50_ms`` is the latency of one chat alone (50 messages, a fresh fake and store,
measured first): what a user waits when the bot is not saturated. Under the closed
loop of 50 chats, each message waits behind the others (Little's law: latency ≈ chats /
throughput), so ``p50_ms`` there is bounded below by ``chats / msgs_per_s`` — about
300 ms at 160 msgs/s — and the ``p50_ms <= 20`` target would need 2,500 msgs/s from one
Python process that also runs the fake server.
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

import carrier_plugin_telegram.plugin
from carrier_plugin_sql.store import SqlStore
from carrier_plugin_telegram.testing import FakeTelegram

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.services import Supervisor
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FakeModel


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def agent(host: PluginHost, store: SqlStore, fake: FakeTelegram | None) -> AgentRuntime:
    secrets = {}
    if fake is not None:
        secrets = {
            "TELEGRAM_TOKEN": fake.token,
            "TELEGRAM_BASE_URL": fake.url,
            "TELEGRAM_DM_POLICY": "open",
            "TELEGRAM_POLL_TIMEOUT_S": "1",
        }
    model = FakeModel(default_text="Thanks, noted.", keep_requests=False)
    return AgentRuntime(
        Character(name="Nova", bio=["A benchmark agent."], secrets=secrets),
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )


async def through_telegram(chats: int, messages: int, folder: Path) -> dict[str, object]:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    host.register(carrier_plugin_telegram.plugin, name="telegram")
    latencies: list[float] = []
    errors = 0
    async with (
        FakeTelegram() as fake,
        SqlStore(f"sqlite:///{folder / 'telegram.db'}") as store,
    ):
        runtime = agent(host, store, fake)
        async with runtime, Supervisor(host, [runtime], only=["telegram"]) as supervisor:
            (health,) = supervisor.health()
            async with asyncio.timeout(30):
                while health.state != "running":  # noqa: ASYNC110 - another task's state
                    await asyncio.sleep(0.01)

            async def chat(user: int) -> None:
                nonlocal errors
                for turn in range(messages):
                    queued = time.monotonic()
                    fake.queue_message(fake.private_message(user_id=user, text=f"m{turn}"))
                    want = turn + 1
                    try:
                        await fake.wait_for(
                            lambda user=user, want=want: len(fake.sent_to(user)) >= want,
                            timeout_s=30,
                        )
                    except TimeoutError:
                        errors += 1
                        continue
                    latencies.append((fake.sent_to(user)[turn].at - queued) * 1000)

            started = time.monotonic()
            await asyncio.gather(*(chat(1000 + c) for c in range(chats)))
            elapsed = time.monotonic() - started
            errors += sum(1 for s in fake.sent if s.get("text") != "Thanks, noted.")
    return {
        "errors": errors,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "msgs_per_s": round(len(latencies) / elapsed, 1),
    }


async def in_process(chats: int, messages: int, folder: Path) -> float:
    host = PluginHost(settings=CarrierSettings(_env_file=None), autoload=False)
    async with SqlStore(f"sqlite:///{folder / 'loop.db'}") as store:
        runtime = agent(host, store, None)
        async with runtime:

            async def chat(user: int) -> None:
                for turn in range(messages):
                    await runtime.handle(
                        IncomingMessage(
                            text=f"m{turn}", user_id=f"u{user}", room_id=f"telegram-{user}"
                        )
                    )

            started = time.monotonic()
            await asyncio.gather(*(chat(c) for c in range(chats)))
            return chats * messages / (time.monotonic() - started)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "idle").mkdir()
        (Path(tmp) / "load").mkdir()
        idle = await through_telegram(1, 50, Path(tmp) / "idle")
        figures = await through_telegram(args.chats, args.messages, Path(tmp) / "load")
        loop_rate = await in_process(args.chats, args.messages, Path(tmp))
    return {
        "benchmark": "telegram",
        "chats": args.chats,
        "messages": args.chats * args.messages,
        **figures,
        "idle_p50_ms": idle["p50_ms"],
        "loop_msgs_per_s": round(loop_rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20, help="per chat")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if not args.json:
        print(
            f"{result['messages']} messages over {args.chats} chats: errors={result['errors']} "
            f"p50={result['p50_ms']} ms p99={result['p99_ms']} ms "
            f"{result['msgs_per_s']} msgs/s (in-process loop: {result['loop_msgs_per_s']})",
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
