"""Plugins installed with pip are discovered through the ``carrier`` entry point group.

A throwaway distribution is written to ``tmp_path``, installed into this test
environment, exercised in a subprocess (a fresh interpreter, as a user would run
it), and uninstalled again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_MODULE = """
import carrier
from carrier.protocols import Action
from carrier.types import ActionResult


class Ping(Action):
    name = "{action}"
    description = "Answer pong."

    async def handler(self, runtime, message, state, arguments):
        return ActionResult(name=self.name, text="pong from {dist}")


class Hello(carrier.Command):
    help = "Say hello."

    def configure(self, parser):
        parser.add_argument("--who", default="world")

    async def run(self, args, host):
        print(f"hello {{args.who}} from {dist}")
        return 0


@carrier.hookimpl
def carrier_register_actions(actions):
    actions.add("{action}", Ping)


@carrier.hookimpl
def carrier_register_commands(commands):
    commands.add("{command}", Hello, description="Say hello (from {dist}).")
"""

PYPROJECT = """
[project]
name = "{dist}"
version = "0.0.1"
dependencies = []

[project.entry-points.carrier]
{entry} = "{package}.plugin"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]
"""


def _write_distribution(root: Path, *, broken: bool = False) -> dict[str, str]:
    token = uuid.uuid4().hex[:8]
    names = {
        "dist": f"carrier-plugin-throwaway-{token}",
        "package": f"carrier_plugin_throwaway_{token}",
        "entry": f"throwaway{token}",
        "action": f"PING_{token.upper()}",
        "command": f"hello-{token}",
    }
    package = root / names["package"]
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    module = PLUGIN_MODULE.format(**names)
    if broken:
        module = "raise ImportError('this plugin is broken on purpose')\n" + module
    (package / "plugin.py").write_text(module)
    (root / "pyproject.toml").write_text(PYPROJECT.format(**names))
    return names


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
    )


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=_env()
    )


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env["CARRIER_DATABASE_URL"] = "memory://"
    return env


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[dict[str, dict[str, str]]]:
    good = _write_distribution(tmp_path / "good")
    bad = _write_distribution(tmp_path / "bad", broken=True)
    try:
        _pip(
            "install",
            "--no-deps",
            "--no-build-isolation",
            str(tmp_path / "good"),
            str(tmp_path / "bad"),
        )
        yield {"good": good, "bad": bad}
    finally:
        _pip("uninstall", "-y", good["dist"], bad["dist"])


def test_pip_installed_plugin_is_discovered_runs_in_the_loop_and_is_gone_after_uninstall(
    installed: dict[str, dict[str, str]],
) -> None:
    good, bad = installed["good"], installed["bad"]
    result = _python(f"""
        import asyncio, json
        from carrier import AgentRuntime, PluginHost, IncomingMessage
        from carrier.testing import FakeModel

        async def main():
            host = PluginHost()
            model = FakeModel()
            model.queue("pinging", actions=["{good["action"]}"])
            async with AgentRuntime(host=host, models={{"large": model, "embedding": None}}) as rt:
                reply = await rt.handle(IncomingMessage(text="ping?"))
            info = host.plugins
            print(json.dumps({{
                "loaded": "{good["entry"]}" in info and info["{good["entry"]}"].error is None,
                "distribution": info["{good["entry"]}"].distribution,
                "bad_error": info["{bad["entry"]}"].error,
                "result": reply.action_results[0].text,
            }}))

        asyncio.run(main())
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] is True
    assert report["distribution"] == good["dist"]
    assert report["result"] == f"pong from {good['dist']}"
    assert "this plugin is broken on purpose" in report["bad_error"]
    assert bad["dist"] in report["bad_error"]

    # `carrier plugins` shows the broken one, and exits non-zero because of it
    carrier = Path(sys.executable).with_name("carrier")
    listing = subprocess.run([str(carrier), "plugins"], capture_output=True, text=True, env=_env())
    assert listing.returncode == 1
    assert f"{good['entry']}  {good['dist']} 0.0.1" in listing.stdout
    assert f"{bad['entry']}  {bad['dist']} 0.0.1" in listing.stdout
    assert "LOAD ERROR: Plugin" in listing.stdout
    assert "Traceback" not in listing.stderr

    # the plugin's sub-command is in --help and runs
    helped = subprocess.run([str(carrier), "--help"], capture_output=True, text=True, env=_env())
    assert f"Say hello (from {good['dist']})" in helped.stdout
    hello = subprocess.run(
        [str(carrier), good["command"], "--who", "tests"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == f"hello tests from {good['dist']}"

    # blocked by CARRIER_DISABLE_PLUGINS
    env = _env() | {"CARRIER_DISABLE_PLUGINS": f"{good['entry']},{bad['entry']}"}
    blocked = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from carrier import PluginHost; h = PluginHost(); "
                f"print('{good['entry']}' in h.plugins, "
                f"any('{bad['entry']}' in str(e) for e in h.load_errors))"
            ),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert blocked.stdout.split() == ["False", "False"]


def test_uninstalled_plugin_is_gone(tmp_path: Path) -> None:
    names = _write_distribution(tmp_path / "short-lived")
    _pip("install", "--no-deps", "--no-build-isolation", str(tmp_path / "short-lived"))
    _pip("uninstall", "-y", names["dist"])
    result = _python(f"""
        from carrier import PluginHost
        host = PluginHost()
        print("{names["entry"]}" in host.plugins, "{names["action"]}" in host.actions)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
