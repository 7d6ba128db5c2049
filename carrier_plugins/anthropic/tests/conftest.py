"""Fixtures of the anthropic plugin's tests: a clean environment, the fakes importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see the defaults, whatever the developer's environment or .env sets."""
    for key in list(os.environ):
        if key.startswith(("CARRIER_ANTHROPIC_", "ANTHROPIC_", "CARRIER_MODEL_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
