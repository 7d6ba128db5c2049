"""``carrier plugins new``: the generated distribution installs and passes its own tests.

Each kind is generated in ``tmp_path`` and installed, editable, into a throwaway
virtual environment that sees this environment's packages through a ``.pth`` file
(``site.addsitedir``), so the generated entry point never reaches this environment.
That environment's Python then runs the generated tests, ``carrier plugins`` and a
piped ``carrier chat``, as the plugin's author would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from carrier.cli import main
from carrier.scaffold import render

#: kind -> (plugin name, extra environment of the chat, what the agent answers "hi")
KINDS = {
    "tool": ("weather", {}, "You said: hi"),
    "model": ("sky", {"CARRIER_MODEL_LARGE": "sky"}, "Hello from sky. You said: hi"),
    "store": ("vault", {"CARRIER_DATABASE_URL": "vault://"}, "You said: hi"),
    "client": ("pager", {}, "You said: hi"),
}


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARRIER_", "PYTEST_"))}
    env.update({"CARRIER_DATABASE_URL": "memory://", "CARRIER_MODEL_EMBEDDING": "none", **extra})
    return env


def _throwaway_venv(folder: Path) -> Path:
    """A venv without pip whose ``site`` also reads this environment's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # an "import" line runs, so our .pth files (an editable carrier) are read too
    Path(purelib, "carrier_main_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def _run(python: Path, *args: str, cwd: Path, stdin: str = "", **env: str) -> str:
    result = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=_environment(**env),
        timeout=300,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_new_plugin_installs_passes_its_tests_and_runs_in_chat(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, chat_env, answer = KINDS[kind]

    assert main(["plugins", "new", name, "--kind", kind, "--directory", str(tmp_path)]) == 0
    root = tmp_path / f"carrier-plugin-{name}"
    assert f"Created {root}" in capsys.readouterr().out
    assert (root / ".github" / "workflows" / "ci.yml").is_file()

    python = _throwaway_venv(tmp_path / "venv")
    install = ("-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q")
    _run(python, *install, "-e", str(root), cwd=tmp_path)

    tests = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    assert " passed" in tests
    assert "failed" not in tests
    assert "error" not in tests

    listing = _run(python, "-m", "carrier", "plugins", cwd=tmp_path)
    assert f"{name}  carrier-plugin-{name} 0.1.0" in listing

    chat = _run(
        python,
        *("-m", "carrier", "-v", "chat"),
        cwd=tmp_path,
        stdin="hi\n",
        CARRIER_PLUGINS=name,
        CARRIER_TRACE_PLUGINS="1",
        **chat_env,
    )
    assert answer in chat.splitlines()
    # CARRIER_TRACE_PLUGINS: "hook carrier_register_actions -> weather", and the like
    called = [line.split(" -> ")[-1] for line in chat.splitlines() if " -> " in line]
    assert any(name in plugins for plugins in called), chat

    # the throwaway environment's entry point never reached this one
    assert name not in {ep.name for ep in entry_points(group="carrier")}


def test_the_tool_plugin_declares_its_settings_lazily_and_reads_them_per_agent() -> None:
    files = render("weather")
    plugin = files["src/carrier_plugin_weather/plugin.py"]
    assert 'settings.add(NAMESPACE, "carrier_plugin_weather.settings:WeatherSettings")' in plugin
    assert "pydantic" not in plugin  # discovery (`carrier --help`) imports no settings class
    actions = files["src/carrier_plugin_weather/actions.py"]
    assert 'runtime.plugin_settings("weather", WeatherSettings)' in actions
    assert 'runtime.plugin_state("weather").increment("lookups")' in actions
    pyproject = files["pyproject.toml"]
    assert 'weather = "carrier_plugin_weather.plugin"' in pyproject
    assert 'addopts = ["-p", "carrier.testing"]' in pyproject
    assert 'env_prefix="CARRIER_WEATHER_"' in files["src/carrier_plugin_weather/settings.py"]


def test_a_name_that_cannot_name_a_plugin_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plugins", "new", "Bad-Name", "--directory", str(tmp_path)])
    assert exit_.value.code == 2
    assert "'Bad-Name' cannot name a plugin" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_existing_plugin_folder_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "carrier-plugin-weather" / "notes.txt"
    kept.parent.mkdir()
    kept.write_text("mine")

    assert main(["plugins", "new", "weather", "--directory", str(tmp_path)]) == 1

    assert "exists and is not empty" in capsys.readouterr().err
    assert kept.read_text() == "mine"
    assert [p.name for p in kept.parent.iterdir()] == ["notes.txt"]


def test_help_does_not_import_the_scaffold() -> None:
    code = (
        "import sys\nfrom carrier.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('scaffold imported:', 'carrier.scaffold' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_environment()
    )
    assert result.stdout.splitlines()[-1] == "scaffold imported: False"
