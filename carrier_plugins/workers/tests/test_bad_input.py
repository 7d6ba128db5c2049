"""Misconfiguration gets a precise error naming the setting, never a driver traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import carrier_plugin_workers.plugin
import pytest
from carrier_plugin_workers.queue import QueueUnreachableError

from carrier.builtin.memory_store import InMemoryStore
from carrier.errors import ConfigurationError
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel
from carrier.types import IncomingMessage

CARRIER = Path(sys.executable).with_name("carrier")


def _client(database_url: str | None) -> AgentRuntime:
    settings = CarrierSettings(database_url=database_url, executor="workers", _env_file=None)
    host = PluginHost(autoload=False, settings=settings)
    host.register(carrier_plugin_workers.plugin, name="workers")
    model = FakeModel()
    return AgentRuntime(
        host=host,
        store=InMemoryStore(),
        models={"large": model, "small": model, "embedding": None},
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "no URL is set: set CARRIER_DATABASE_URL"),
        ("sqlite:///tmp/x.db", "cannot open a 'sqlite' URL"),
        ("postgresql://user@host:notaport/db", "malformed"),
    ],
)
async def test_a_queue_url_that_is_not_postgres_is_refused(url: str | None, expected: str) -> None:
    async with _client(url) as client:
        with pytest.raises(ConfigurationError, match=expected) as caught:
            await client.handle(IncomingMessage(text="hi"))
    assert "CARRIER_WORKERS_DATABASE_URL" in str(caught.value)


async def test_an_unreachable_queue_is_named_with_its_host() -> None:
    async with _client("postgresql://carrier:secret@127.0.0.1:1/carrier") as client:
        with pytest.raises(QueueUnreachableError) as caught:
            await client.handle(IncomingMessage(text="hi"))
    message = str(caught.value)
    assert "Cannot reach the job queue's PostgreSQL at 127.0.0.1:1" in message
    assert "secret" not in message


@pytest.mark.parametrize(
    ("args", "url", "expected"),
    [
        (["worker"], "sqlite:///tmp/never.db", "keeps its queue in PostgreSQL"),
        (["worker", "--concurrency", "0"], "postgresql://u@127.0.0.1:1/d", "--concurrency"),
    ],
)
def test_carrier_worker_misconfigured_exits_with_a_message(
    args: list[str], url: str, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(CARRIER_DATABASE_URL=url, CARRIER_PLUGINS="sql,workers", CARRIER_MODEL_LARGE="echo")
    done = subprocess.run(
        [str(CARRIER), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
