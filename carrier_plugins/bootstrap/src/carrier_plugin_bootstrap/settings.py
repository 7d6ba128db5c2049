"""``BootstrapSettings`` (``CARRIER_BOOTSTRAP_*``), and the per-runtime lookup.

Imported on first use only: :mod:`carrier_plugin_bootstrap.plugin` declares the
class as an import string so that discovering the plugin imports no pydantic.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.types import Role

__all__ = ["VALID_ROLES", "BootstrapSettings", "parse_action_roles"]

#: How the valid values of an action's role are written in messages.
VALID_ROLES = "'owner', 'admin', 'member' or null (anyone)"
_EXAMPLE = '{"UPDATE_GOAL": "admin", "MUTE_ROOM": "admin", "IGNORE": null}'


def parse_action_roles(value: Any) -> dict[str, Role | None]:
    """Validate an ``ACTION_ROLES`` value: a JSON object (or its text) mapping action
    names (upper-cased here) to a role or ``null``.

    Raises:
        ValueError: Not an object, or a value that is not a role; the message names
            every bad value and the valid ones.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{value!r} is not valid JSON ({exc.msg}); write an object such as {_EXAMPLE}"
            ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(
            f"expected an object mapping action names to roles, such as {_EXAMPLE}; "
            f"found a {type(value).__name__}"
        )
    roles: dict[str, Role | None] = {}
    bad: list[str] = []
    for name, role in value.items():
        key = str(name).strip().upper()
        if role is None or isinstance(role, Role):
            roles[key] = role
        elif isinstance(role, str) and role.strip().lower() in {r.value for r in Role}:
            roles[key] = Role(role.strip().lower())
        else:
            bad.append(f"{role!r} (for {key})")
    if bad:
        noun = "is not a role" if len(bad) == 1 else "are not roles"
        raise ValueError(f"{', '.join(bad)} {noun}; valid roles are {VALID_ROLES}")
    return roles


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
    fact_grounding: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Part of a fact's content words that must appear in the sender's "
        "message (its names and numbers always must); other facts are dropped as invented.",
    )
    facts_mode: Literal["auto", "model", "verbatim"] = Field(
        default="auto",
        description="'model': the small model extracts facts; 'verbatim': the message's "
        "own first-person statements are kept as written (no model call); 'auto': "
        "verbatim for the embedded local model, else model.",
    )
    relevant_memories: int = Field(
        default=3,
        ge=0,
        description="The sender's earlier messages most similar to the new one added to "
        "the prompt (same scope rules as facts); 0 disables.",
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
    max_scheduled_tasks: int = Field(
        default=10,
        ge=0,
        description="Tasks the agent may have scheduled with SCHEDULE_TASK at once; 0 "
        "withdraws the action.",
    )
    min_task_interval_s: float = Field(
        default=60.0, gt=0, description="Shortest repeat interval SCHEDULE_TASK accepts."
    )
    max_task_delay_s: float = Field(
        default=30 * 24 * 3600.0, gt=0, description="Furthest first run SCHEDULE_TASK accepts."
    )
    # ``| None`` makes pydantic-settings hand text that is not JSON to the validator
    # below (which reports it) instead of failing with a SettingsError; it never
    # returns None.
    action_roles: dict[str, Role | None] | None = Field(
        default_factory=dict,
        description="Required role per action, overriding the defaults (any action "
        f"registered on the runtime): {_EXAMPLE}. An unknown role or action name stops "
        "the start.",
    )

    @field_validator("action_roles", mode="before")
    @classmethod
    def _action_roles(cls, value: Any) -> dict[str, Role | None]:
        try:
            return parse_action_roles(value)
        except ValueError as exc:
            raise PydanticCustomError("action_roles", str(exc)) from None
