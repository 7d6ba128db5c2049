"""Every code block in ``docs/**/*.md`` and ``README.md`` runs, so a snippet that does
not work fails CI.

Each Markdown file is one test. Its blocks run in order, in one namespace and in one
temporary working directory (``$HOME`` too), offline and fast:
``CARRIER_DISABLE_PLUGIN_AUTOLOAD=1`` (only the builtins load; register plugins
in-process), ``CARRIER_DATABASE_URL=memory://``, ``CARRIER_MODEL_LARGE=echo`` and
``CARRIER_MODEL_EMBEDDING=none``, unless a block sets them itself.

- ```` ```python ```` blocks are executed (``asyncio.run(...)`` or top-level ``await``).
- ```` ```bash ````, ```` ```sh ```` and ```` ```console ```` blocks run in bash with
  ``set -euo pipefail``, this interpreter's ``bin`` first on ``PATH`` (in ``console``
  blocks only lines starting with ``$ `` are commands; the rest is output).
- ```` ```toml ```` blocks are parsed; one holding ``[build-system]`` claims to be a
  complete ``pyproject.toml`` and must have a name, a version and an entry point.
- Other languages (``text``, ``json``, ...) and blocks without one are not run.

A marker, an HTML comment on the line just before the fence, changes that:

- ``<!-- not run: REASON -->`` exempts the block. Reasons allowed: it installs
  packages, publishes, starts a long-running server, needs the network, or is a
  fragment of a larger file. Keep these few.
- ``<!-- file: PATH -->`` writes the block to ``PATH`` in the working directory instead
  of running it (``src/`` there is on ``sys.path``, so a plugin written this way can be
  imported by the blocks after it); a ``pyproject.toml`` written this way is also
  built into a wheel with hatchling, which proves it installs.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: str(p.relative_to(ROOT))
)
SHELLS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(
    r"^(?P<marker><!--\s*(?P<kind>not run|file):\s*(?P<arg>.*?)\s*-->\n)?"
    r"(?P<indent>[ \t]*)(?P<fence>```+)(?P<lang>[\w+-]*)[^\n]*\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
ENV = {
    "CARRIER_DISABLE_PLUGIN_AUTOLOAD": "1",
    "CARRIER_DATABASE_URL": "memory://",
    "CARRIER_MODEL_LARGE": "echo",
    "CARRIER_MODEL_EMBEDDING": "none",
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    lang: str
    body: str
    marker: str | None  # "not run" or "file"
    arg: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = match["indent"]
        body = "".join(
            line[len(indent) :] if line.startswith(indent) else line
            for line in match["body"].splitlines(keepends=True)
        )
        line = text.count("\n", 0, match.start("fence")) + 1
        found.append(Block(page, line, match["lang"].lower(), body, match["kind"], match["arg"]))
    return found


def _runs(block: Block) -> bool:
    return block.marker is None and (block.lang in SHELLS or block.lang in {"python", "toml"})


def _run_python(block: Block, namespace: dict[str, Any]) -> None:
    code = compile(
        block.body, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    result = eval(code, namespace)  # the docs' own code, as a reader would run it
    if inspect.iscoroutine(result):
        asyncio.run(result)


def _run_shell(block: Block, cwd: Path) -> None:
    if block.lang == "console":
        lines = [line[2:] for line in block.body.splitlines() if line.startswith("$ ")]
        script = "\n".join(lines) + "\n"
    else:
        script = block.body
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block.where}: exit status {result.returncode}\n{script}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def _check_toml(block: Block) -> dict[str, Any]:
    try:
        data = tomllib.loads(block.body)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{block.where}: invalid TOML: {exc}") from exc
    if "build-system" in data:
        project = data.get("project", {})
        assert project.get("name"), f"{block.where}: a pyproject.toml needs [project] name"
        assert project.get("version"), f"{block.where}: a pyproject.toml needs a version"
        assert project.get("entry-points", {}).get("carrier"), (
            f"{block.where}: a plugin's pyproject.toml needs [project.entry-points.carrier]"
        )
    return data


def _write_file(block: Block, cwd: Path) -> None:
    path = cwd / block.arg
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.body)
    if path.name == "pyproject.toml":
        _check_toml(block)


def _build_wheel(project: Path) -> None:
    """Build the pyproject a page wrote, as pip would (PEP 517, hatchling)."""
    code = (
        "import sys, hatchling.build as b; "
        "print(b.build_wheel(sys.argv[1]))"  # wheel dir; runs in the project's folder
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(project / "dist")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{project}: the wheel does not build\n{result.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("CARRIER_PLUGINS", "CARRIER_DISABLE_PLUGINS", "CARRIER_CHARACTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local" / "share"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    before = set(sys.modules)
    environ = dict(os.environ)  # a page may set variables for its own blocks
    try:
        for block in blocks(page):
            if block.marker == "file":
                _write_file(block, tmp_path)
            elif not _runs(block):
                continue
            elif block.lang == "python":
                _run_python(block, namespace)
            elif block.lang == "toml":
                _check_toml(block)
            else:
                _run_shell(block, tmp_path)
        if (tmp_path / "pyproject.toml").exists():
            _build_wheel(tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(environ)
        for name in set(sys.modules) - before:  # the page's own modules, not the kernel's
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]


def test_markers_are_few() -> None:
    """Exempted blocks stay a minority of the runnable ones."""
    all_blocks = [b for page in PAGES for b in blocks(page)]
    exempt = [b for b in all_blocks if b.marker == "not run"]
    run = [b for b in all_blocks if _runs(b) or b.marker == "file"]
    assert len(exempt) < len(run), [b.where for b in exempt]
    for block in exempt:
        assert block.arg, f"{block.where}: say why the block is not run"
