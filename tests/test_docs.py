"""Every hook spec is documented in docs/hooks.md with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from carrier import hookspecs

DOC = (Path(__file__).parents[1] / "docs" / "hooks.md").read_text()
SPECS = {
    name: fn
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("carrier_")
}


def _signature(name: str) -> str:
    signature = inspect.signature(SPECS[name])
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"{name}({params}) -> {signature.return_annotation}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    assert f"### `{_signature(name)}`" in DOC, f"docs/hooks.md lacks: ### `{_signature(name)}`"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_parameters_are_described(name: str) -> None:
    section = DOC.split(f"### `{_signature(name)}`")[1].split("\n### ")[0]
    for param in inspect.signature(SPECS[name]).parameters:
        assert f"- **{param}**" in section, f"{name}: parameter {param!r} is not described"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_has_a_docstring_with_every_param(name: str) -> None:
    doc = SPECS[name].__doc__ or ""
    for param in inspect.signature(SPECS[name]).parameters:
        assert f":param {param}:" in doc, f"{name}: docstring lacks :param {param}:"


def test_documented_hooks_exist() -> None:
    documented = set(re.findall(r"### `(carrier_\w+)\(", DOC))
    assert documented == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_has_a_page_with_signature_parameters_and_example(name: str) -> None:
    page = Path(__file__).parents[1] / "docs" / "hooks" / f"{name}.md"
    assert page.exists(), f"docs/hooks/{name}.md is missing"
    text = page.read_text()
    assert _signature(name) in text, f"docs/hooks/{name}.md lacks: {_signature(name)}"
    for param in inspect.signature(SPECS[name]).parameters:
        assert f"- **{param}**" in text, f"docs/hooks/{name}.md: {param!r} is not described"
    assert "```python" in text, f"docs/hooks/{name}.md has no example"
    assert f"(hooks/{name}.md)" in DOC, f"docs/hooks.md does not link to docs/hooks/{name}.md"
