"""carrier.testing as a plugin author meets it: one line to enable, no asyncio config.

The ``pytester`` tests run a throwaway project in pytest-asyncio's default strict mode,
the way a third-party plugin's own test suite runs; the others use the fixtures here.
"""

from __future__ import annotations

from typing import Any

import pytest

import carrier
from carrier.host import PluginHost
from carrier.testing import CliRunner
from carrier.types import ActionResult

pytest_plugins = ["pytester"]

# A third-party plugin as it would ship: an action with typed arguments, registered
# through a hook. The pytester projects import it as `weather_plugin`.
WEATHER_PLUGIN = """
from pydantic import BaseModel

import carrier
from carrier import Action, ActionResult


class WeatherArgs(BaseModel):
    city: str


class GetWeather(Action):
    name = "GET_WEATHER"
    description = "Look up today's weather for a city."
    parameters = WeatherArgs

    async def handler(self, runtime, message, state, arguments):
        return ActionResult(name=self.name, text=f"Sunny in {arguments.city}.")


@carrier.hookimpl
def carrier_register_actions(actions):
    actions.add("GET_WEATHER", GetWeather)
"""

PLUGIN_UNDER_TEST = """
from typing import Any

import pytest

import carrier
import weather_plugin


@pytest.fixture
def carrier_plugins():
    return {"weather": weather_plugin}


async def test_action_runs_in_the_runtime(runtime, fake_model, request):
    assert len(list(request.node.iter_markers("asyncio"))) == 1
    assert "GET_WEATHER" in runtime.host.actions.names()
    fake_model.queue("Let me check.", actions=[("GET_WEATHER", {"city": "Oslo"})])
    reply = await runtime.handle(carrier.IncomingMessage(text="weather in Oslo?"))
    assert [r.text for r in reply.action_results] == ["Sunny in Oslo."]


def test_cli_lists_the_plugin(carrier_cli):
    result = carrier_cli("plugins")
    assert result.exit_code == 0, result.stderr
    assert "weather" in result.stdout
    assert "GET_WEATHER" in result.stdout


def test_cli_chat_reads_stdin(carrier_cli):
    result = carrier_cli("chat", stdin="hello\\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "You said: hello\\n"


def test_cli_usage_error_exits_2(carrier_cli):
    result = carrier_cli("no-such-command")
    assert result.exit_code == 2
    assert "invalid choice" in result.stderr
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throwaway plugin project: no asyncio_mode, no other pytest configuration."""
    for name in ("CARRIER_MODEL_LARGE", "CARRIER_MODEL_SMALL", "CARRIER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(weather_plugin=WEATHER_PLUGIN)
    pytester.syspathinsert()
    return pytester


def test_async_test_with_the_runtime_fixture_needs_no_asyncio_mode(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        """
        import carrier

        async def test_greets(runtime, fake_model):
            fake_model.queue("Hello!")
            reply = await runtime.handle(carrier.IncomingMessage(text="hi"))
            assert reply.texts == ["Hello!"]
        """
    )
    result = project.runpytest("-p", "carrier.testing")
    result.stdout.re_match_lines([r"(?i)asyncio: mode=(mode\.)?strict\b"])
    result.assert_outcomes(passed=1)


def test_plugin_under_test_is_in_runtime_and_cli(project: pytest.Pytester) -> None:
    project.makepyfile(test_weather=PLUGIN_UNDER_TEST)
    # warnings as errors, no asyncio_default_fixture_loop_scope: still a clean start
    result = project.runpytest("-p", "carrier.testing", "-W", "error")
    result.assert_outcomes(passed=4)


def test_pytest_plugins_line_enables_it_too(project: pytest.Pytester) -> None:
    project.makeconftest('pytest_plugins = ["carrier.testing"]')
    project.makepyfile(test_weather=PLUGIN_UNDER_TEST)
    result = project.runpytest_subprocess("-W", "error")  # a fresh process, as in CI
    result.assert_outcomes(passed=4)


def test_auto_mode_still_works_and_marks_once(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    project.makepyfile(test_weather=PLUGIN_UNDER_TEST)
    result = project.runpytest("-p", "carrier.testing", "-W", "error")
    result.stdout.re_match_lines([r"(?i)asyncio: mode=(mode\.)?auto\b"])
    result.assert_outcomes(passed=4)


def test_an_explicit_asyncio_marker_is_kept(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import asyncio
        import pytest

        pytestmark = pytest.mark.asyncio(loop_scope="module")
        loops = []

        async def test_one(request):
            assert [m.kwargs for m in request.node.iter_markers("asyncio")] == [
                {"loop_scope": "module"}
            ]
            loops.append(asyncio.get_running_loop())

        async def test_two():
            loops.append(asyncio.get_running_loop())
            assert loops[0] is loops[1]
        """
    )
    result = project.runpytest("-p", "carrier.testing")
    result.assert_outcomes(passed=2)


def test_without_the_plugin_strict_mode_is_unchanged(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        async def test_unmarked():
            pass

        @pytest.mark.asyncio
        async def test_marked():
            pass
        """
    )
    project.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = project.runpytest("-p", "no:carrier.testing")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*_ test_unmarked _*", "async def functions are not natively supported*"]
    )


def test_tests_of_other_async_runners_are_left_alone(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.trio
        async def test_for_trio(request):
            pass
        """
    )
    project.makeini("[pytest]\nmarkers = trio: run with trio\n")
    result = project.runpytest("-p", "carrier.testing")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


# ---- the fixtures in this repository (asyncio_mode = "auto") -------------------------


class Greet(carrier.Action):
    name = "GREET"
    description = "Say hello."

    async def handler(self, runtime: Any, message: Any, state: Any, arguments: Any) -> ActionResult:
        return ActionResult(name=self.name, text="Hello!")


class Greeter:
    """A plugin object whose methods carry hookimpls."""

    @carrier.hookimpl
    def carrier_register_actions(self, actions: carrier.Registry[carrier.Action]) -> None:
        actions.add("GREET", Greet)


@pytest.fixture
def carrier_plugins() -> dict[str, object]:
    return {"greeter": Greeter()}


def test_host_registers_carrier_plugins(host: PluginHost) -> None:
    assert "greeter" in host.plugins
    assert "GREET" in host.actions.names()


def test_carrier_cli_shows_the_plugin_and_exit_status(carrier_cli: CliRunner) -> None:
    result = carrier_cli("plugins")
    assert result.exit_code == 0, result.stderr
    assert "greeter" in result.stdout
    assert "GREET" in result.stdout
    version = carrier_cli("--version")
    assert (version.exit_code, version.stdout.strip()) == (0, f"carrier {carrier.__version__}")


async def test_carrier_cli_refuses_a_running_event_loop(carrier_cli: CliRunner) -> None:
    with pytest.raises(RuntimeError, match="from a plain `def` test"):
        carrier_cli("plugins")
