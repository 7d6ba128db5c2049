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
    from carrier.settings import SettingsRegistry
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
