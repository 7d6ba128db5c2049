"""``AnthropicSettings``: the ``CARRIER_ANTHROPIC_*`` namespace."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AnthropicSettings"]


class AnthropicSettings(BaseSettings):
    """Settings of the ``anthropic`` model, from ``CARRIER_ANTHROPIC_*`` and ``.env``.

    The key and the base URL fall back to the SDK's own ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_BASE_URL``. A character's ``settings``/``secrets`` override them per agent.
    """

    model_config = SettingsConfigDict(
        env_prefix="CARRIER_ANTHROPIC_", env_file=".env", extra="ignore", populate_by_name=True
    )

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CARRIER_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY", "api_key"),
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "CARRIER_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL", "base_url"
        ),
        description="Another Messages-API endpoint (a proxy, a gateway).",
    )
    model: str = Field(default="claude-sonnet-4-5", description="The large model id.")
    small_model: str = Field(default="claude-haiku-4-5", description="The small model id.")
    max_tokens: int = Field(default=1024, gt=0, description="Answer limit when unset.")
    timeout_s: float = Field(default=60.0, gt=0)
    context_window: int = Field(default=200_000, gt=0)
    prompt_cache: bool = Field(
        default=True,
        description="Set cache breakpoints at the end of the system prompt and of the "
        "prompt's stable prefix (the history), so later turns read them from the cache.",
    )
