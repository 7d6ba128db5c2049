"""``carrier.testing``: an opt-in pytest plugin for Carrier and its plugin authors.

Enable it with ``-p carrier.testing`` (or ``pytest_plugins = ["carrier.testing"]``).
It provides fixtures — ``host`` (a fresh ``PluginHost`` without autoload),
``fake_model``, ``character``, ``runtime`` and ``events`` — the test doubles
``FakeModel``, ``FunctionModel`` and ``EventRecorder``, the ``MemoryStoreConformance``
suite (in ``carrier.testing.conformance``), and a guard that fails any test that
opens a connection to a non-loopback address, so no test calls a real remote
model. Set ``CARRIER_ALLOW_REMOTE_REQUESTS=1`` to lift the guard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing.fakes import EventRecorder, FakeModel, FunctionModel

__all__ = ["EventRecorder", "FakeModel", "FunctionModel", "RemoteRequestBlocked"]


class RemoteRequestBlocked(RuntimeError):  # noqa: N818 - reads as what happened
    """A test tried to reach a non-loopback address (a real remote model or API)."""


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # Unix socket path
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _carrier_block_remote_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("CARRIER_ALLOW_REMOTE_REQUESTS") == "1":
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        if not _is_local(address):
            raise RemoteRequestBlocked(
                f"carrier.testing blocked a connection to {address!r}: tests must not call "
                f"remote models or APIs. Serve a fake on 127.0.0.1, or set "
                f"CARRIER_ALLOW_REMOTE_REQUESTS=1 for a deliberate live test."
            )

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def carrier_settings() -> CarrierSettings:
    """Kernel settings of the ``host`` fixture: the environment without ``.env``.

    Override this fixture in a test module to change them, e.g. to make retries fast:
    ``return CarrierSettings(model_retry_initial_s=0.01, _env_file=None)``.
    """
    return CarrierSettings(_env_file=None)


@pytest.fixture
def host(carrier_settings: CarrierSettings) -> Iterator[PluginHost]:
    """A fresh host with only the builtin plugin; register yours with ``host.register``."""
    plugin_host = PluginHost(autoload=False, settings=carrier_settings)
    yield plugin_host
    plugin_host.check_pending()


@pytest.fixture
def fake_model() -> FakeModel:
    """A scripted model; ``fake_model.queue("hi", actions=["REPLY"])``."""
    return FakeModel()


@pytest.fixture
def character() -> Character:
    """A small test character named "Testy"."""
    return Character(name="Testy", bio=["A careful test agent."], topics=["testing"])


@pytest.fixture
def events(host: PluginHost) -> EventRecorder:
    """Every event the host's runtimes emit."""
    recorder = EventRecorder()
    host.register(recorder, name="carrier.testing.events")
    return recorder


@pytest.fixture
async def runtime(
    host: PluginHost, character: Character, fake_model: FakeModel
) -> AsyncIterator[AgentRuntime]:
    """A started runtime: ``host``, ``character``, ``fake_model`` for the small and
    large classes, no embeddings, the in-memory store."""
    agent = AgentRuntime(
        character,
        host=host,
        store=InMemoryStore(),
        models={"large": fake_model, "small": fake_model, "embedding": None},
    )
    async with agent:
        yield agent
