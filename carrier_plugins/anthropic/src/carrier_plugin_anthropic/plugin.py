"""Carrier plugin: Anthropic models. Entry point ``anthropic``.

Hook implementations only. The settings class is declared as an import string and
the ``anthropic`` SDK is imported inside :func:`build_model`, so discovering this
plugin imports neither pydantic-settings nor the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import carrier

if TYPE_CHECKING:
    from carrier.protocols import Model
    from carrier.registry import Registry
    from carrier.settings import SettingsRegistry
    from carrier_plugin_anthropic.settings import AnthropicSettings

__all__ = ["build_model"]


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``anthropic`` settings namespace (``CARRIER_ANTHROPIC_*``)."""
    settings.add("anthropic", "carrier_plugin_anthropic.settings:AnthropicSettings")


@carrier.hookimpl
def carrier_register_models(models: Registry[Model]) -> None:
    """Offer the ``anthropic`` model: chat, streaming, tools, structured output."""
    models.add(
        "anthropic",
        build_model,
        settings="anthropic",
        description="Claude models through the Anthropic Messages API.",
    )


def build_model(
    settings: AnthropicSettings, *, model: str | None = None, **overrides: Any
) -> Model:
    """Build the ``anthropic`` model; raises ``ConfigurationError`` when no key is set.

    Args:
        settings: The validated ``anthropic`` settings.
        model: The id of a spec such as ``anthropic:claude-sonnet-4-5``; ``small`` or
            ``large`` pick the configured ids; ``None`` follows each request's model class.
        **overrides: ``http_client=`` (an ``httpx.AsyncClient``), or setting values for
            this instance (``base_url=``, ``api_key=``, ``timeout_s=``, ...).
    """
    from carrier_plugin_anthropic.model import AnthropicModel  # the SDK loads here only

    return AnthropicModel.from_settings(settings, model=model, **overrides)
