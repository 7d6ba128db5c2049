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

from pathlib import Path

import nox

from dev import LINT_COMMANDS, dependency_group, without_deps

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["kernel", "plugin", "together", "lint"]

ROOT = Path(__file__).parent
PLUGINS = sorted(p.parent.name for p in ROOT.glob("carrier_plugins/*/pyproject.toml"))
KERNEL_TEST = dependency_group(ROOT / "pyproject.toml", "test")


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
    tests = dependency_group(path / "pyproject.toml", "test")
    session.install(".", str(path), *KERNEL_TEST, *tests)
    _install_without_deps(session, [path])
    session.run("pytest", str(path / "tests"), *session.posargs)


@nox.session
def together(session: nox.Session) -> None:
    """Every plugin installed at once: discovery, name clashes, the whole suite."""
    paths = [str(ROOT / "carrier_plugins" / d) for d in PLUGINS]
    tests = [
        g
        for d in PLUGINS
        for g in dependency_group(ROOT / "carrier_plugins" / d / "pyproject.toml", "test")
    ]
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
