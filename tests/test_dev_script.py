"""``python3 dev.py chat`` skips its install check when nothing changed since the last
install (the stamp matches the interpreter, dev.py and every pyproject.toml)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("carrier_dev_script", ROOT / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_unchanged_install_is_skipped_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = _dev()
    monkeypatch.setattr(dev, "VENV", tmp_path)
    monkeypatch.setattr(dev, "BIN", tmp_path / "bin")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "carrier").write_text("")
    packages = ["-e", "."] + [
        item for p in dev.plugin_dirs() for item in ("-e", str(p.relative_to(ROOT)))
    ]
    (tmp_path / ".carrier-installed-chat").write_text(dev.install_key(packages))

    started = time.perf_counter()
    dev.install(dev=False)
    assert time.perf_counter() - started < 1.0
    # (had it not skipped, it would have run .venv/bin/uv, which is not there)
    assert not (tmp_path / "bin" / "uv").exists()
