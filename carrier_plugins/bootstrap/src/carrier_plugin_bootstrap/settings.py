"""``BootstrapSettings`` (``CARRIER_BOOTSTRAP_*``), and the per-runtime lookup.

Imported on first use only: :mod:`carrier_plugin_bootstrap.plugin` declares the
class as an import string so that discovering the plugin imports no pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.types import Role

__all__ = ["BootstrapSettings"]


class BootstrapSettings(BaseSettings):
    """Settings of the bootstrap plugin, from ``CARRIER_BOOTSTRAP_*`` variables.

    A character's ``settings`` override them per agent
    (``{"settings": {"BOOTSTRAP_REFLECTION_INTERVAL": 6}}``).
    """

    model_config = SettingsConfigDict(
        env_prefix="CARRIER_BOOTSTRAP_", env_file=".env", extra="ignore"
    )

    group_policy: Literal["model", "mention"] = Field(
        default="model",
        description="In group rooms, unaddressed messages go to the small model ('model') "
        "or are ignored ('mention'). Followed rooms always ask the model.",
    )
    examples_sample: int = Field(
        default=3, ge=0, description="Example conversations shown per message (rotating)."
    )
    facts_about_sender: int = Field(
        default=5, ge=0, description="Newest facts about the sender added to the prompt."
    )
    fact_similarity: float = Field(
        default=0.92,
        ge=0.0,
        le=1.0,
        description="A new fact this similar to a stored one is a duplicate.",
    )
    reflection_interval: int = Field(
        default=12, ge=0, description="Messages of a room between reflections; 0 disables."
    )
    evaluator_max_tokens: int = Field(
        default=200, ge=16, description="Output budget of the evaluators' model calls."
    )
    chunk_chars: int = Field(
        default=1000, ge=100, description="Largest knowledge chunk, in characters."
    )
    chunk_overlap: int = Field(default=100, ge=0, description="Characters shared by chunks.")
    knowledge_on_start: bool = Field(
        default=True, description="Ingest the character's knowledge when the runtime starts."
    )
    action_roles: dict[str, Role | None] = Field(
        default_factory=dict,
        description='Required role per action, overriding the defaults: {"SEND_MESSAGE": '
        '"owner", "MUTE_ROOM": "admin", "IGNORE": null}.',
    )
