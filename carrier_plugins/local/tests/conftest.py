"""Shared fixtures: one real ``LocalModel`` per session (loading is lazy and cheap)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings

NOVA = (
    "You are Nova, a friendly and curious AI companion who runs on the user's own computer.\n\n"
    "About Nova: Nova is a small assistant built with Carrier. Nova keeps answers short.\n\n"
    "Nova is friendly, curious, concise."
)


@pytest.fixture(scope="session")
def model() -> Iterator[LocalModel]:
    """The shipped model, shared by the tests that only read from it."""
    built = build_model(LocalSettings(_env_file=None, context_size=2048, seed=0))
    assert isinstance(built, LocalModel)
    yield built
    built.chat.close()
    built.embedder.close()


@pytest.fixture(autouse=True)
def _no_local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the defaults, whatever the developer's environment sets."""
    import os

    for key in list(os.environ):
        if key.startswith("CARRIER_LOCAL_"):
            monkeypatch.delenv(key)
