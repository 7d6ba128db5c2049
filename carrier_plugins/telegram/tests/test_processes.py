"""``carrier start`` as a real process: killed with SIGKILL while the model is still
answering and restarted, it answers the update once; SIGINT stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from carrier_plugin_telegram.testing import FakeTelegram

from carrier.testing.distributions import plugin_distribution

from .conftest import wait_until

PLUGIN = textwrap.dedent('''
    """Test plugin: a model that hangs on its first call (the test kills it there)."""
    import asyncio, os
    from pathlib import Path
    import carrier
    from carrier.protocols import Model
    from carrier.types import ModelResponse

    OUT = Path(os.environ["SLOW_DIR"])

    class Hangs(Model):
        name = "hangs"
        async def generate(self, request):
            with open(OUT / "calls", "a") as f:
                f.write(request.messages[-1].content.replace("\\n", " ") + "\\n")
            if not (OUT / "hung").exists():
                (OUT / "hung").write_text("yes")
                await asyncio.sleep(120)  # SIGKILLed here
            return ModelResponse(text="Answered after the restart.")

    @carrier.hookimpl
    def carrier_register_models(models):
        models.add("hangs", lambda **_: Hangs())
''')


def _env(tmp_path: Path, fake: FakeTelegram) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        PYTHONPATH=str(plugin_distribution(tmp_path / "site", "slowtg", PLUGIN)),
        SLOW_DIR=str(tmp_path),
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path / 'agent.db'}",
        CARRIER_MODEL_LARGE="hangs",
        CARRIER_MODEL_SMALL="hangs",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_PLUGINS="slowtg,sql,telegram",
        CARRIER_TELEGRAM_TOKEN=fake.token,
        CARRIER_TELEGRAM_BASE_URL=fake.url,
        CARRIER_TELEGRAM_DM_POLICY="open",
        CARRIER_TELEGRAM_POLL_TIMEOUT_S="1",
        CARRIER_TELEGRAM_LOCK_TTL_S="2",
    )
    return env


async def _start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    carrier = Path(sys.executable).with_name("carrier")
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            str(carrier), "start", env=env, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL
        )


async def test_carrier_start_killed_mid_answer_answers_the_update_once_after_restart(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    env = _env(tmp_path, fake)
    log = tmp_path / "start.log"
    first = await _start(env, log)
    try:
        fake.queue_message(fake.private_message(user_id=7, text="hello there"))
        await wait_until(lambda: (tmp_path / "hung").exists(), timeout_s=60)
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert fake.sent == []  # killed before any answer

    second = await _start(env, log)
    try:
        await fake.wait_sent(1, timeout_s=60)
        # another user, after the restart: answered in their own chat
        fake.queue_message(fake.private_message(user_id=8, text="hi"))
        await fake.wait_for(lambda: len(fake.sent) >= 2, timeout_s=30)
        await asyncio.sleep(1.5)  # room for a second (wrong) answer to arrive
        second.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await second.wait() == 0, log.read_text()
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    to_ada = [s for s in fake.sent if int(s["chat_id"]) == 7]
    assert [s["text"] for s in to_ada] == ["Answered after the restart."], log.read_text()
    assert [int(s["chat_id"]) for s in fake.sent] == [7, 8]
    calls = (tmp_path / "calls").read_text().splitlines()
    assert sum("hello there" in line for line in calls) == 2  # the killed try, the answer
    assert "carrier start: stopping" in log.read_text()
