"""Nox sessions: the kernel alone, each plugin alone, everything together, lint, bench.

    nox -s kernel
    nox -s "plugin(dist='sql')"
    nox -s together
    nox -s lint

Installs are not editable and ``pytest`` (not ``python -m pytest``) runs, so the
installed wheel is what is tested. The kernel path is passed in the same install
command so ``carrier`` never comes from PyPI.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

from dev import LINT_COMMANDS, dependency_group, without_deps

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["kernel", "plugin", "together", "lint"]

ROOT = Path(__file__).parent
PLUGINS = sorted(p.parent.name for p in ROOT.glob("carrier_plugins/*/pyproject.toml"))
KERNEL_TEST = dependency_group(ROOT / "pyproject.toml", "test")
#: Workspace distributions by name: a test group naming one gets the local path.
WORKSPACE = {
    tomllib.loads((ROOT / "carrier_plugins" / d / "pyproject.toml").read_text())["project"][
        "name"
    ]: ROOT / "carrier_plugins" / d
    for d in PLUGINS
}


def _test_group(path: Path) -> tuple[list[str], list[Path]]:
    """A plugin's test group, with workspace distributions as local paths."""
    requirements, plugins = [], []
    for requirement in dependency_group(path / "pyproject.toml", "test"):
        local = WORKSPACE.get(requirement)
        if local is None:
            requirements.append(requirement)
        else:
            requirements.append(str(local))
            plugins.append(local)
    return requirements, plugins


def _install_without_deps(session: nox.Session, plugins: list[Path]) -> None:
    bare = [p for plugin in plugins for p in without_deps(plugin / "pyproject.toml")]
    if bare:
        session.install("--no-deps", *bare)


@nox.session
def kernel(session: nox.Session) -> None:
    """The kernel alone; no SDK, driver or plugin installed."""
    session.install(".", *KERNEL_TEST)
    session.run("pytest", "tests", "--ignore=tests/together", *session.posargs)


@nox.session
@nox.parametrize("dist", PLUGINS)
def plugin(session: nox.Session, dist: str) -> None:
    """One plugin and the local kernel, nothing else."""
    path = ROOT / "carrier_plugins" / dist
    tests, needed = _test_group(path)
    session.install(".", str(path), *KERNEL_TEST, *tests)
    _install_without_deps(session, [path, *needed])
    session.run("pytest", str(path / "tests"), *session.posargs)


@nox.session
def together(session: nox.Session) -> None:
    """Every plugin installed at once: discovery, name clashes, the whole suite."""
    paths = [str(ROOT / "carrier_plugins" / d) for d in PLUGINS]
    tests = [r for d in PLUGINS for r in _test_group(ROOT / "carrier_plugins" / d)[0]]
    session.install(".", *paths, *KERNEL_TEST, *tests)
    _install_without_deps(session, [Path(p) for p in paths])
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and strict mypy on the kernel."""
    session.install(".", *dependency_group(ROOT / "pyproject.toml", "lint"))
    for command in LINT_COMMANDS:
        session.run(*command)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark, each printing its JSON line."""
    paths = [str(ROOT / "carrier_plugins" / d) for d in PLUGINS]
    session.install(".", *paths, *KERNEL_TEST)
    _install_without_deps(session, [Path(p) for p in paths])
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), "--json")
