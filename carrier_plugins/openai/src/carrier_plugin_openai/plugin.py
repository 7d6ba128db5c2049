"""Carrier plugin: OpenAI models. Entry point ``openai``.

Hook implementations only. The settings class is declared as an import string and
the ``openai`` SDK is imported inside :func:`build_model`, so discovering this plugin
(``carrier --help``) imports neither pydantic-settings nor the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import carrier

if TYPE_CHECKING:
    from carrier.protocols import Model
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.settings import SettingsRegistry
    from carrier.types import ModelClass
    from carrier_plugin_openai.settings import OpenAISettings

__all__ = ["build_model"]


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``openai`` settings namespace (``CARRIER_OPENAI_*``)."""
    settings.add("openai", "carrier_plugin_openai.settings:OpenAISettings")


@carrier.hookimpl
def carrier_register_models(models: Registry[Model]) -> None:
    """Offer the ``openai`` model: chat, streaming, tools, structured output, embeddings."""
    models.add(
        "openai",
        build_model,
        settings="openai",
        description="OpenAI or any OpenAI-compatible server (CARRIER_OPENAI_BASE_URL).",
    )


@carrier.hookimpl
def carrier_choose_model(runtime: AgentRuntime, model_class: ModelClass) -> str | None:
    """Chat with the OpenAI-compatible server that ``CARRIER_OPENAI_BASE_URL`` names
    when no model is configured otherwise (``CARRIER_MODEL_LARGE``/``_SMALL``, the
    character's ``modelProvider``): ``CARRIER_OPENAI_BASE_URL=http://127.0.0.1:11434/v1
    CARRIER_OPENAI_MODEL=qwen2.5 carrier chat`` (Ollama, LM Studio, llama-server) needs
    no key. The small model is the same one unless ``CARRIER_OPENAI_SMALL_MODEL`` is
    set. Embeddings stay with the default."""
    configured = runtime.settings
    if str(model_class) == "embedding" or configured.model_large or configured.model_small:
        return None
    if runtime.character.model_provider or "openai" not in runtime.host.models:
        return None
    settings = runtime.plugin_settings("openai")
    if not settings.base_url:
        return None
    if str(model_class) == "small" and "small_model" not in settings.model_fields_set:
        return "openai:large"
    return "openai"


def build_model(settings: OpenAISettings, *, model: str | None = None, **overrides: Any) -> Model:
    """Build the ``openai`` model; raises ``ConfigurationError`` when no key is set.

    Args:
        settings: The validated ``openai`` settings.
        model: The id of a spec such as ``openai:gpt-4.1-mini``; ``small`` or ``large``
            pick the configured ids; ``None`` follows each request's model class.
        **overrides: ``http_client=`` (an ``httpx.AsyncClient``), or setting values for
            this instance (``base_url=``, ``api_key=``, ``timeout_s=``, ...).
    """
    from carrier_plugin_openai.model import OpenAIModel  # the SDK loads here only

    return OpenAIModel.from_settings(settings, model=model, **overrides)
