"""With every workspace plugin installed: all are discovered, none clash, none is heavy
to discover. (``nox -s kernel`` skips this folder; the README's test command runs it.)"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from carrier.host import PluginHost

ROOT = Path(__file__).parents[2]
WORKSPACE = {
    name: path.parent
    for path in sorted(ROOT.glob("carrier_plugins/*/pyproject.toml"))
    for name in tomllib.loads(path.read_text())["project"]["entry-points"]["carrier"]
}
HEAVY = [
    "openai",
    "anthropic",
    "sqlmodel",
    "sqlalchemy",
    "aiosqlite",
    "fastapi",
    "uvicorn",
    "xllamacpp",
    "onnxruntime",
    "numpy",
    "tokenizers",
    "pydantic_settings",
]


def test_every_workspace_plugin_loads_without_errors_or_clashes() -> None:
    host = PluginHost()
    assert set(WORKSPACE) <= set(host.plugins)
    assert host.load_errors == []
    for kind in (
        "models",
        "actions",
        "action_sources",
        "providers",
        "evaluators",
        "stores",
        "executors",
        "clients",
        "commands",
    ):
        getattr(host, kind).names()  # a clash raises PluginContractError
    assert host.load_errors == []


@pytest.mark.parametrize("entry", sorted(WORKSPACE))
def test_discovering_a_plugin_imports_nothing_heavy(entry: str) -> None:
    code = (
        "import json, sys\n"
        "from carrier.host import PluginHost\n"
        f"host = PluginHost(autoload=False)\n"
        "from importlib.metadata import entry_points\n"
        f"ep = next(e for e in entry_points(group='carrier') if e.name == {entry!r})\n"
        f"host.register(ep.load(), name={entry!r})\n"
        "for kind in ('models', 'actions', 'providers', 'evaluators', 'stores', 'executors',"
        " 'clients', 'commands'):\n"
        "    getattr(host, kind).names()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_carrier_help_loads_no_pydantic() -> None:
    """``carrier --help`` loads every plugin and lists their commands; it must stay cheap,
    so no plugin may import pydantic (or anything heavier) to be discovered."""
    code = (
        "import json, sys\n"
        "from carrier.host import PluginHost\n"
        "host = PluginHost()\n"
        "host.commands.names()\n"
        "print(json.dumps([m for m in ('pydantic', 'pydantic_settings') if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
