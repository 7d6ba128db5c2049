"""``CarrierSettings`` and the per-plugin settings namespaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.errors import ConfigurationError
from carrier.plugin_settings import SettingsRegistry, overrides_from_character

__all__ = [
    "CarrierSettings",
    "SettingsRegistry",
    "data_dir",
    "format_validation_error",
    "load_settings",
    "overrides_from_character",
]


def data_dir() -> Path:
    """The user's data folder for Carrier (created on first use, never here)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "carrier"


def format_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field, reason)`` pairs from a pydantic error, fields written ``a.b[2]``."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        field = ""
        for part in error["loc"]:
            if isinstance(part, int):
                field += f"[{part}]"
            else:
                field += ("." if field else "") + str(part)
        reason = error["msg"]
        if error["type"] not in ("missing", "extra_forbidden") and "input" in error:
            shown = error["input"]
            if isinstance(shown, str | int | float | bool) or shown is None:
                reason += f" (found {shown!r})"
            else:
                reason += f" (found a {type(shown).__name__})"
        problems.append((field or "(top level)", reason))
    return problems


class CarrierSettings(BaseSettings):
    """Kernel settings, from ``CARRIER_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_", env_file=".env", extra="ignore")

    character: str | None = Field(default=None, description="Path of the character file.")
    database_url: str | None = Field(
        default=None,
        description="Memory store URL; its scheme picks the store plugin. "
        "Default: a SQLite file in the user's data folder when carrier-plugin-sql is "
        "installed, else memory://.",
    )
    model_large: str | None = Field(default=None, description="e.g. 'openai:gpt-4.1-mini'.")
    model_small: str | None = Field(default=None, description="Defaults to the large model.")
    model_embedding: str | None = Field(default=None, description="Model spec for embeddings.")
    executor: str | None = Field(default=None, description="Executor name; default 'inprocess'.")
    plugins: str | None = Field(default=None, description="Comma-separated allowlist.")
    disable_plugins: str | None = Field(default=None, description="Comma-separated blocklist.")
    disable_plugin_autoload: bool = False
    trace_plugins: bool = False
    history_limit: int | None = Field(
        default=None,
        ge=0,
        description="Recent messages in the state; unset: 32, or 16 when the large model "
        "is small (Model.small, such as the default local one).",
    )
    max_prompt_tokens: int = Field(default=6000, ge=256)
    gc_gen0_threshold: int = Field(
        default=10_000,
        ge=0,
        description="The garbage collector's young-generation threshold, set once per "
        "process while it is still Python's default of 700 (carrier.collector); 0 leaves "
        "the collector alone.",
    )
    turn_cache_mb: float = Field(
        default=32.0,
        ge=0,
        description="Budget (MiB, estimated) of the history turns kept built with their "
        "token counts between prompts: ~40,000 turns, the windows of ~1,000 active rooms; "
        "each room's last-sent history gets the same budget again.",
    )
    max_action_steps: int = Field(default=4, ge=1, le=32)
    provider_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="The most any provider may take per message (a provider's own "
        "timeout_s applies when shorter).",
    )
    observer_timeout_s: float = Field(
        default=1.0, gt=0, description="The most async event observers may take per event."
    )
    model_retry_attempts: int = Field(default=4, ge=1)
    model_retry_budget_s: float = Field(default=60.0, gt=0)
    model_retry_initial_s: float = Field(
        default=0.5, ge=0, description="First backoff wait; doubles per attempt, plus jitter."
    )
    max_message_chars: int = Field(
        default=100_000, ge=1, description="Longer incoming messages are refused."
    )
    max_response_chars: int = Field(
        default=32_000, ge=1, description="Longer model answers are cut."
    )
    record_steps: bool = Field(
        default=True,
        description="Lease each message's run and record its steps in the store, so a "
        "replay never repeats a completed action (turn off only to measure the cost).",
    )
    lease_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="A run's lease lasts this long unless renewed (every third of it); "
        "a crashed run is recovered after it.",
    )
    recover_on_start: bool = Field(
        default=True,
        description="carrier chat/serve/worker finish unanswered messages and cut-off "
        "evaluations when they start.",
    )
    recover_limit: int = Field(default=100, ge=0, description="Most messages recovered at start.")
    facts_limit: int = Field(default=5, ge=0)
    knowledge_limit: int = Field(default=5, ge=0)
    search_threshold: float = Field(default=0.3, ge=-1, le=1)


def load_settings(**overrides: Any) -> CarrierSettings:
    """``CarrierSettings`` from the environment, as a ``ConfigurationError`` if invalid."""
    try:
        return CarrierSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(settings_error_message("CARRIER", exc)) from None


def settings_error_message(prefix: str, exc: ValidationError) -> str:
    """A readable ``ConfigurationError`` message naming each bad variable."""
    lines = [f"Invalid settings in {prefix}_* environment variables or .env:"]
    for field, reason in format_validation_error(exc):
        lines.append(f"  {prefix}_{field.upper()}: {reason}")
    return "\n".join(lines)
