"""The kernel imports no LLM SDK, database driver or web framework."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = [
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
    "httpx",
]


def test_kernel_imports_without_sdks() -> None:
    code = (
        "import sys, json\n"
        "import carrier, carrier.runtime, carrier.testing, carrier.cli, carrier.host\n"
        "from carrier.host import PluginHost\n"
        "PluginHost(autoload=False).models.names()\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_import_carrier_is_cheap() -> None:
    heavy = ("pydantic", "pydantic_settings", "tenacity", "yaml")
    code = (
        f"import json, sys, carrier; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
