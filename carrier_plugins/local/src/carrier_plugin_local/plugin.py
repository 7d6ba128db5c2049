"""Carrier plugin: the embedded default model. Entry point ``local``.

Hook implementations and settings only: the llama.cpp engine and onnxruntime are
imported by :mod:`carrier_plugin_local.model` when the model is first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.protocols import Model
    from carrier.registry import Registry
    from carrier.settings import SettingsRegistry
    from carrier_plugin_local.settings import LocalSettings

__all__ = ["build_model"]

#: Model ids that name the shipped default rather than a file (``local:smollm2``).
_DEFAULT_IDS = frozenset({"default", "smollm2", "smollm2-135m", "smollm2-135m-instruct"})


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``local`` settings namespace."""
    settings.add("local", "carrier_plugin_local.settings:LocalSettings")


@carrier.hookimpl
def carrier_register_models(models: Registry[Model]) -> None:
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
    from carrier_plugin_local.settings import LocalSettings

    values = {k: v for k, v in overrides.items() if k in LocalSettings.model_fields}
    if model and model.lower() not in _DEFAULT_IDS:
        values["model_path"] = Path(model).expanduser()
    if values:
        settings = LocalSettings.model_validate({**settings.model_dump(), **values})
    return LocalModel(settings)
