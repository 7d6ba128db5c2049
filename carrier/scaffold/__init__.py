"""``carrier plugins new``: write a plugin distribution from the templates shipped here.

The templates are plain package data under ``templates/`` (``common/`` for every
kind, then one folder per ``--kind``), rendered with :class:`string.Template`:
``$package`` and friends are replaced, ``$$`` is a literal ``$``. In paths,
``__package__`` becomes the import package and ``dot-`` a leading dot; the
``.tmpl`` suffix keeps linters, type checkers and pytest away from the sources.
Nothing here touches the network.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from carrier import __version__
from carrier.errors import CarrierError

__all__ = ["KINDS", "check_name", "create_plugin", "render"]

#: What each ``--kind`` generates, as the README says it.
KINDS = {
    "tool": "an action with typed parameters, a provider, an evaluator, settings and a "
    "`carrier` command",
    "model": "a model backend (`CARRIER_MODEL_LARGE=$name`), with settings",
    "store": "a memory store for `CARRIER_DATABASE_URL=$name://`, checked by the kernel's "
    "conformance suite",
    "client": "a platform client that turns platform messages into agent messages, with settings",
}

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: The kernel's own commands, which a plugin command may not shadow.
_RESERVED = {"chat", "run", "plugins", "character", "carrier", "builtin", "testing"}


def check_name(name: str) -> str:
    """``name`` if it can name a plugin (entry point, settings namespace, package).

    Raises:
        ValueError: It is not lower-case letters, digits and ``_`` starting with a
            letter, or it is a Python keyword or a name the kernel uses.
    """
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} cannot name a plugin: use lower-case letters, digits and '_', "
            f"starting with a letter (for example 'weather' or 'my_tool')."
        )
    if name in _RESERVED:
        raise ValueError(f"{name!r} is a name Carrier uses itself; choose another.")
    return name


def _names(name: str, kind: str) -> dict[str, str]:
    camel = "".join(part.capitalize() for part in name.split("_"))
    upper = name.upper()
    names = {
        "name": name,
        "kind": kind,
        "dist": f"carrier-plugin-{name.replace('_', '-')}",
        "package": f"carrier_plugin_{name}",
        "Class": camel,
        "UPPER": upper,
        "env_prefix": f"CARRIER_{upper}_",
        "carrier_version": __version__,
        "carrier_next": _next_minor(__version__),
    }
    names["summary"] = Template(KINDS[kind]).substitute(names)
    return names


def _next_minor(version: str) -> str:
    major, minor, *_ = (int(part) for part in [*re.findall(r"\d+", version), "0", "0"])
    return f"{major}.{minor + 1}" if major == 0 else f"{major + 1}.0"


def _templates(kind: str) -> list[tuple[str, Traversable]]:
    """``(relative path, template)`` of ``common/`` then ``kind/``; a kind's file
    replaces a common one of the same path."""
    root = resources.files("carrier.scaffold").joinpath("templates")
    found: dict[str, Traversable] = {}
    for folder in ("common", kind):
        stack: list[tuple[str, Traversable]] = [("", root.joinpath(folder))]
        while stack:
            prefix, node = stack.pop()
            for child in node.iterdir():
                path = f"{prefix}{child.name}"
                if child.is_dir():
                    stack.append((f"{path}/", child))
                elif child.name.endswith(".tmpl"):
                    found[path] = child
    return sorted(found.items())


def render(name: str, *, kind: str = "tool") -> dict[str, str]:
    """The files of plugin ``name`` of ``kind``: relative path → text.

    Raises:
        ValueError: ``name`` cannot name a plugin, or ``kind`` is unknown.
    """
    check_name(name)
    if kind not in KINDS:
        raise ValueError(f"Unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}.")
    names = _names(name, kind)
    files: dict[str, str] = {}
    for template_path, template in _templates(kind):
        parts = [
            "." + part.removeprefix("dot-") if part.startswith("dot-") else part
            for part in template_path.removesuffix(".tmpl").split("/")
        ]
        path = "/".join(parts).replace("__package__", names["package"])
        files[path] = Template(template.read_text(encoding="utf-8")).substitute(names)
    return files


def create_plugin(name: str, *, kind: str = "tool", directory: Path = Path(".")) -> Path:
    """Write ``carrier-plugin-<name>/`` under ``directory``; return its path.

    Raises:
        ValueError: ``name`` cannot name a plugin, or ``kind`` is unknown.
        CarrierError: The target folder exists and is not empty.
    """
    files = render(name, kind=kind)
    root = directory / _names(name, kind)["dist"]
    if root.exists() and any(root.iterdir()):
        raise CarrierError(
            f"{root} exists and is not empty; remove it or pass another --directory."
        )
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root
