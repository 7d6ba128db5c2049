"""``carrier start`` with Telegram and Discord enabled: one process serves both, and a
crash of one client (Discord closes the gateway for good) leaves the other serving
while the supervisor starts the crashed one again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from carrier_plugin_discord.testing import FakeDiscord
from carrier_plugin_telegram.testing import FakeTelegram


def _env(tmp_path: Path, telegram: FakeTelegram, discord: FakeDiscord) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path / 'agent.db'}",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_SMALL="echo",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_PLUGINS="sql,telegram,discord",
        CARRIER_TELEGRAM_TOKEN=telegram.token,
        CARRIER_TELEGRAM_BASE_URL=telegram.url,
        CARRIER_TELEGRAM_DM_POLICY="open",
        CARRIER_TELEGRAM_POLL_TIMEOUT_S="1",
        CARRIER_DISCORD_TOKEN=discord.token,
        CARRIER_DISCORD_API_BASE=discord.url,
        CARRIER_DISCORD_GATEWAY_URL=discord.gateway_url,
        CARRIER_DISCORD_DM_POLICY="open",
        CARRIER_DISCORD_RECONNECT_TIMEOUT_S="3",
    )
    return env


async def test_carrier_start_serves_telegram_and_discord_and_isolates_a_crash(
    tmp_path: Path,
) -> None:
    log = tmp_path / "start.log"
    async with FakeTelegram() as telegram, FakeDiscord() as discord:
        carrier = Path(sys.executable).with_name("carrier")
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                str(carrier),
                "-v",
                "start",
                env=_env(tmp_path, telegram, discord),
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
            )
        try:
            await discord.wait_connected(timeout_s=60)
            telegram.queue_message(telegram.private_message(user_id=7, text="hi on telegram"))
            discord.dispatch(
                "MESSAGE_CREATE",
                discord.message(channel_id=901, user_id=11, content="hi on discord"),
            )
            await telegram.wait_sent(1, timeout_s=30)
            await discord.wait_sent(1, timeout_s=30)

            await discord.close_gateway(4004)  # "authentication failed": discord.py gives up
            await discord.wait_for(lambda: discord._gateway is None)
            telegram.queue_message(telegram.private_message(user_id=8, text="still there?"))
            await telegram.wait_sent(2, timeout_s=30)

            await discord.wait_for(lambda: discord.identifies == 2, timeout_s=60)
            discord.dispatch(
                "MESSAGE_CREATE",
                discord.message(channel_id=902, user_id=12, content="back on discord"),
            )
            await discord.wait_sent(2, timeout_s=30)
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                assert await process.wait() == 0, log.read_text()
        except BaseException:
            # the child's log is the only account of what it did; pytest shows it on failure
            sys.stderr.write(log.read_text())
            raise
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = log.read_text()
    assert [s["text"] for s in telegram.sent] == [
        "You said: hi on telegram",
        "You said: still there?",
    ]
    assert [(s["channel_id"], s["content"]) for s in discord.sent] == [
        (901, "You said: hi on discord"),
        (902, "You said: back on discord"),
    ]
    assert re.search(r"Client discord:\w+ crashed", text), text
    assert "carrier start: stopping" in text
