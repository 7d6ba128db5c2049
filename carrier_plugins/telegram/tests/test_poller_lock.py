"""One poller per bot token: a second instance on the same store stands by, says who
polls, never causes a 409 Conflict, and takes over when the first stops."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import carrier_plugin_telegram.plugin
import pytest
from carrier_plugin_sql.store import SqlStore
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.services import Supervisor
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel

from .conftest import telegram_secrets, wait_until


def _process(fake: FakeTelegram, store: SqlStore) -> tuple[PluginHost, AgentRuntime]:
    """What one ``carrier start`` process holds: its own host and runtime."""
    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None))
    host.register(carrier_plugin_telegram.plugin, name="telegram")
    model = FakeModel(default_text="from one of us")
    runtime = AgentRuntime(
        Character(name="Testy", secrets=telegram_secrets(fake, lock_ttl_s=1.5)),
        host=host,
        store=store,
        models={"large": model, "small": model, "embedding": None},
    )
    return host, runtime


async def test_two_instances_with_one_token_one_polls_the_other_reports_the_lock(
    fake: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "carrier_plugin_telegram")
    url = f"sqlite:///{tmp_path}/shared.db"
    async with SqlStore(url) as store_a, SqlStore(url) as store_b:
        host_a, runtime_a = _process(fake, store_a)
        host_b, runtime_b = _process(fake, store_b)
        async with runtime_a, runtime_b:
            first = Supervisor(host_a, [runtime_a], backoff_initial_s=0.1)
            second = Supervisor(host_b, [runtime_b], backoff_initial_s=0.1)
            await first.__aenter__()
            try:
                (health_a,) = first.health()
                await wait_until(lambda: health_a.state == "running")
                async with second:
                    (health_b,) = second.health()
                    await wait_until(lambda: "standby" in health_b.detail)
                    assert health_b.state == "starting"
                    assert f"polls @{fake.username}" in health_b.detail
                    assert "pid" in health_b.detail
                    fake.queue_message(fake.private_message(user_id=7, text="who answers?"))
                    await fake.wait_sent(1)
                    await asyncio.sleep(1.0)  # several lock renewals and retries
                    assert fake.conflicts == 0
                    assert health_b.state == "starting"

                    await first.stop()  # the polling process goes away
                    await wait_until(lambda: health_b.state == "running", timeout_s=10)
                    fake.queue_message(fake.private_message(user_id=7, text="and now?"))
                    await fake.wait_sent(2)
            finally:
                await first.stop()
    assert any("standby" in r.getMessage() for r in caplog.records)
