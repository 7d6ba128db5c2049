"""``OpenAISettings``: the ``CARRIER_OPENAI_*`` namespace."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OpenAISettings"]


class OpenAISettings(BaseSettings):
    """Settings of the ``openai`` model, from ``CARRIER_OPENAI_*`` variables and ``.env``.

    The key and the base URL fall back to the SDK's own ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL``. A character's ``settings``/``secrets`` override them per agent.
    """

    model_config = SettingsConfigDict(
        env_prefix="CARRIER_OPENAI_", env_file=".env", extra="ignore", populate_by_name=True
    )

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CARRIER_OPENAI_API_KEY", "OPENAI_API_KEY", "api_key"),
        description="API key. Optional when base_url names a server that needs none.",
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CARRIER_OPENAI_BASE_URL", "OPENAI_BASE_URL", "base_url"),
        description="An OpenAI-compatible server, e.g. 'http://127.0.0.1:8080/v1'.",
    )
    organization: str | None = None
    model: str = Field(default="gpt-4.1-mini", description="The large model id.")
    small_model: str = Field(default="gpt-4.1-nano", description="The small model id.")
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int | None = Field(
        default=None, gt=0, description="Requested vector size (text-embedding-3-* only)."
    )
    max_tokens: int = Field(default=1024, gt=0, description="Answer limit when unset.")
    timeout_s: float = Field(default=60.0, gt=0)
    context_window: int | None = Field(default=None, gt=0)
    max_stop_sequences: int = Field(
        default=4,
        ge=1,
        description=(
            "Most stop sequences sent with a request; OpenAI accepts 4 and never gets more. "
            "Raise it only for a compatible server (base_url) that accepts more."
        ),
    )
    no_stop_models: list[str] = Field(
        default_factory=list,
        description=(
            "Regular expressions (searched case-insensitively) of model ids that reject "
            "'stop', in addition to the built-in o-series and gpt-5 ones; a JSON list "
            "in the environment."
        ),
    )

    @field_validator("no_stop_models")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{pattern!r} is not a regular expression ({exc}); write one such as "
                    f"'^my-reasoner' or '^o\\d'."
                ) from exc
        return patterns
