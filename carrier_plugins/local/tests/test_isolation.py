"""Discovering the plugin stays cheap: no engine is imported with the plugin module."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["xllamacpp", "onnxruntime", "tokenizers", "numpy", "carrier_plugin_local.model"]


def test_plugin_module_imports_no_engine() -> None:
    code = (
        "import json, sys, carrier_plugin_local.plugin;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_building_the_model_loads_nothing_heavy() -> None:
    code = (
        "import json, sys;"
        "from carrier_plugin_local.plugin import build_model;"
        "from carrier_plugin_local.settings import LocalSettings;"
        "build_model(LocalSettings());"
        "print(json.dumps([m for m in ['xllamacpp', 'onnxruntime'] if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
