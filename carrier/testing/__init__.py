"""``carrier.testing``: an opt-in pytest plugin for Carrier and its plugin authors.

Enable it with ``-p carrier.testing`` (or ``pytest_plugins = ["carrier.testing"]``);
nothing else needs configuring. It provides fixtures — ``carrier_plugins`` (override
it to name the plugins under test), ``host`` (a fresh ``PluginHost`` without autoload,
those plugins registered), ``fake_model``, ``character``, ``runtime``, ``events`` and
``carrier_cli`` (the ``carrier`` command, in-process) and ``cassette`` (record model
calls once with ``--carrier-record``, replay them offline; ``carrier.replay``) —
the test doubles ``FakeModel``, ``FunctionModel`` and ``EventRecorder``, the
``MemoryStoreConformance`` suite (in ``carrier.testing.conformance``), and a guard
that fails any test that opens a connection to a non-loopback address, so no test
calls a real remote model (``--carrier-record`` lifts it while recording). Set
``CARRIER_ALLOW_REMOTE_REQUESTS=1`` to lift the guard.

``async def`` tests run on pytest-asyncio without an ``asyncio_mode`` setting: in
pytest-asyncio's default strict mode this plugin marks the coroutine tests of the
projects that enable it with ``@pytest.mark.asyncio``. Projects that do not enable
it keep pytest-asyncio's behaviour unchanged.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import re
import socket
import warnings
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import Any

import pytest

try:
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "carrier.testing runs async tests and fixtures with pytest-asyncio, which is not "
        "installed. Install it with: pip install pytest-asyncio"
    ) from exc

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.replay import Cassette, CassetteError, CassetteMismatchError, CassetteModel
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing.cli_runner import CliResult, CliRunner
from carrier.testing.fakes import EventRecorder, FakeModel, FunctionModel, prompt_text

__all__ = [
    "Cassette",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteModel",
    "CliResult",
    "CliRunner",
    "EventRecorder",
    "FakeModel",
    "FunctionModel",
    "RemoteRequestBlocked",
    "prompt_text",
]

#: Markers of other async test runners; their tests are left to them.
_OTHER_ASYNC_MARKERS = ("anyio", "trio")


def _asyncio_mode(config: pytest.Config) -> str | None:
    """pytest-asyncio's mode for this run, or ``None`` when it is not active."""
    if not config.pluginmanager.hasplugin("asyncio"):
        return None
    mode = config.getoption("asyncio_mode", default=None) or config.getini("asyncio_mode")
    return str(mode)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("carrier").addoption(
        "--carrier-record",
        action="store_true",
        default=False,
        help="Call the real models of tests using the 'cassette' fixture and (re)write "
        "their cassettes; remote connections are allowed. Default: replay, no network.",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Start without pytest-asyncio's notice that ``asyncio_default_fixture_loop_scope``
    is unset, which ``filterwarnings = error`` turns into a startup error.

    Its default (the fixture's own scope) is the loop scope Carrier's fixtures need: they
    are function-scoped. A value in the project's configuration is used as usual. The
    filter matches that one message only, and sits in the filters pytest sets up for
    the session, below each test's own ``filterwarnings``.

    It also declares the ``carrier_cassette`` marker.
    """
    config.addinivalue_line(
        "markers",
        "carrier_cassette(name=None, *, strict=True): the cassette of the 'cassette' "
        "fixture, cassettes/NAME.yaml beside the test module; strict=False allows "
        "unused recordings.",
    )
    if _asyncio_mode(config) is None or config.getini("asyncio_default_fixture_loop_scope"):
        return
    warnings.filterwarnings(
        "ignore",
        message='The configuration option "asyncio_default_fixture_loop_scope" is unset',
        category=pytest.PytestDeprecationWarning,
    )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Mark unmarked ``async def`` tests with ``asyncio`` in pytest-asyncio's strict mode.

    ``trylast`` makes this the innermost wrapper, so pytest-asyncio's own wrapper sees
    the marker when it turns the collected function into a coroutine test. In auto mode
    pytest-asyncio marks them itself, and nothing is done here.
    """
    result = yield
    if not result or _asyncio_mode(collector.config) != "strict":
        return result
    for item in result if isinstance(result, list) else [result]:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("asyncio") is None
            and not any(item.get_closest_marker(m) for m in _OTHER_ASYNC_MARKERS)
        ):
            item.add_marker(pytest.mark.asyncio)
    return result


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
def _carrier_block_remote_requests(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if os.environ.get("CARRIER_ALLOW_REMOTE_REQUESTS") == "1":
        return
    if request.config.getoption("carrier_record", False):
        return  # recording calls the real models, deliberately
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
def carrier_plugins() -> Mapping[str, object]:
    """The plugins under test, by name; ``host``, ``runtime`` and ``carrier_cli`` get them.

    Override it in a ``conftest.py`` or test module with the names your entry points use::

        @pytest.fixture
        def carrier_plugins():
            return {"weather": carrier_plugin_weather.plugin}

    A value is what ``PluginHost.register`` accepts: a module, or an object whose methods
    carry ``@carrier.hookimpl``. The default is no plugin.
    """
    return {}


@pytest.fixture
def host(
    carrier_settings: CarrierSettings, carrier_plugins: Mapping[str, object]
) -> Iterator[PluginHost]:
    """A fresh host without autoload: the builtin plugin and ``carrier_plugins``.

    Register more with ``host.register(plugin, name=...)``. ``check_pending()`` runs at
    teardown, so a misspelled hook fails the test.
    """
    plugin_host = PluginHost(autoload=False, settings=carrier_settings)
    for name, plugin in carrier_plugins.items():
        plugin_host.register(plugin, name=name)
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


@pytest_asyncio.fixture
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


@pytest.fixture
def carrier_cli(host: PluginHost) -> CliRunner:
    """The ``carrier`` command, run in-process against ``host`` (with ``carrier_plugins``).

    ``result = carrier_cli("plugins")`` or ``carrier_cli("chat", stdin="hi\\n")`` returns a
    ``CliResult`` with ``exit_code``, ``stdout`` and ``stderr``. Call it from a plain
    ``def`` test: the command runs its own event loop.
    """
    return CliRunner(host)


#: The exception that failed a test's call phase, for the ``cassette`` fixture's teardown.
_CALL_ERROR = pytest.StashKey[BaseException]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call" and call.excinfo is not None:
        item.stash[_CALL_ERROR] = call.excinfo.value
    return report


@pytest.fixture
def cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """Record model calls once, replay them in every later run.

    Wrap each model with ``cassette.wrap(model_or_factory, label="large")``. By default
    the calls are answered from ``cassettes/<module>.<test>.yaml`` beside the test module
    (``@pytest.mark.carrier_cassette("name")`` picks another name) and the real model
    is never built or called; ``pytest --carrier-record`` calls it and writes the file.
    Teardown fails the test on a request that matched no recording, and on unused
    recordings unless the marker says ``strict=False``.
    """
    marker = request.node.get_closest_marker("carrier_cassette")
    name = marker.args[0] if marker is not None and marker.args else None
    if name is None and marker is not None:
        name = marker.kwargs.get("name")
    if name is None:
        module = request.path.stem if request.path is not None else "test"
        name = f"{module}.{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name).strip('_')}"
    strict = bool(marker.kwargs.get("strict", True)) if marker is not None else True
    record = bool(request.config.getoption("carrier_record", False))
    path = request.path.parent / "cassettes" / f"{name}.yaml"
    recorded = Cassette(
        path,
        mode="record" if record else "replay",
        strict=strict,
        record_hint=f"record it with: pytest --carrier-record {request.node.nodeid}",
    )
    yield recorded
    recorded.save()
    try:
        recorded.check()
    except CassetteError as exc:
        if request.node.stash.get(_CALL_ERROR, None) is exc:
            return  # the test already failed with it
        pytest.fail(str(exc), pytrace=False)
