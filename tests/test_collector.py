"""The runtime spaces out garbage collections once per process, unless the application
chose its own pace or the setting says to leave the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from carrier import AgentRuntime, Character, IncomingMessage, PluginHost
from carrier.collector import PYTHON_DEFAULT_GEN0
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel


@pytest.fixture(autouse=True)
def _restore_threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


async def _start(**settings: object) -> None:
    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None, **settings))
    async with AgentRuntime(
        Character(name="Ada"), host=host, models={"large": FakeModel(), "embedding": None}
    ) as agent:
        for user in ("ada", "bob"):
            reply = await agent.handle(IncomingMessage(text="hi", user_id=user))
            assert reply.texts == ["ok"]


async def test_python_s_default_pace_is_raised_at_start() -> None:
    gc.set_threshold(PYTHON_DEFAULT_GEN0, 10, 10)
    await _start()
    assert gc.get_threshold() == (10_000, 10, 10)


async def test_an_application_s_own_threshold_is_kept() -> None:
    gc.set_threshold(1234, 5, 5)
    await _start()
    assert gc.get_threshold() == (1234, 5, 5)


async def test_zero_leaves_the_collector_alone() -> None:
    gc.set_threshold(PYTHON_DEFAULT_GEN0, 10, 10)
    await _start(gc_gen0_threshold=0)
    assert gc.get_threshold() == (PYTHON_DEFAULT_GEN0, 10, 10)
