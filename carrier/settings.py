"""``CarrierSettings`` and the per-plugin settings namespaces."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.errors import ConfigurationError, PluginContractError, UnknownNameError

__all__ = ["CarrierSettings", "SettingsRegistry", "data_dir", "format_validation_error"]


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
    history_limit: int = Field(default=32, ge=0, description="Recent messages in the state.")
    max_prompt_tokens: int = Field(default=6000, ge=256)
    max_action_steps: int = Field(default=4, ge=1, le=32)
    provider_timeout_s: float = Field(default=2.0, gt=0)
    model_retry_attempts: int = Field(default=4, ge=1)
    model_retry_budget_s: float = Field(default=60.0, gt=0)
    facts_limit: int = Field(default=5, ge=0)
    knowledge_limit: int = Field(default=5, ge=0)
    search_threshold: float = Field(default=0.3, ge=-1, le=1)


def load_settings(**overrides: Any) -> CarrierSettings:
    """``CarrierSettings`` from the environment, as a ``ConfigurationError`` if invalid."""
    try:
        return CarrierSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_settings_message("CARRIER", exc)) from None


def _settings_message(prefix: str, exc: ValidationError) -> str:
    lines = [f"Invalid settings in {prefix}_* environment variables or .env:"]
    for field, reason in format_validation_error(exc):
        lines.append(f"  {prefix}_{field.upper()}: {reason}")
    return "\n".join(lines)


class SettingsRegistry:
    """Plugins' settings classes by namespace, filled by ``carrier_add_settings``.

    ``get(namespace)`` validates the class once (environment, ``.env``, then
    per-agent overrides) and caches it. Errors become ``ConfigurationError`` naming
    the variable; secret values never appear in them.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseModel]] = {}
        self._values: dict[str, BaseModel] = {}

    def add(self, namespace: str, settings_class: type[BaseModel]) -> None:
        """Declare ``namespace``'s settings class (a pydantic-settings ``BaseSettings``)."""
        existing = self._classes.get(namespace)
        if existing is not None and existing is not settings_class:
            raise PluginContractError(
                f"Two plugins declare settings namespace {namespace!r}: "
                f"{existing.__qualname__} and {settings_class.__qualname__}."
            )
        self._classes[namespace] = settings_class

    def namespaces(self) -> list[str]:
        return sorted(self._classes)

    def get(self, namespace: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """The validated settings object of ``namespace``."""
        if namespace not in self._classes:
            raise UnknownNameError("settings namespace", namespace, self._classes)
        if overrides:
            return self._validate(namespace, dict(overrides))
        if namespace not in self._values:
            self._values[namespace] = self._validate(namespace, {})
        return self._values[namespace]

    def _validate(self, namespace: str, values: dict[str, Any]) -> BaseModel:
        settings_class = self._classes[namespace]
        try:
            return settings_class(**values)
        except ValidationError as exc:
            prefix = f"CARRIER_{namespace.upper()}"
            config = getattr(settings_class, "model_config", {})
            prefix = str(config.get("env_prefix", prefix + "_")).rstrip("_")
            raise ConfigurationError(_settings_message(prefix, exc)) from None


def overrides_from_character(namespace: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per-agent overrides for ``namespace`` from a character's ``settings``/``secrets``.

    ``CARRIER_OPENAI_API_KEY`` and ``OPENAI_API_KEY`` both map to ``api_key`` of
    namespace ``openai``.
    """
    found: dict[str, Any] = {}
    prefixes = (f"CARRIER_{namespace.upper()}_", f"{namespace.upper()}_")
    for key, value in settings.items():
        for prefix in prefixes:
            if key.upper().startswith(prefix):
                found[key[len(prefix) :].lower()] = (
                    value.get_secret_value() if isinstance(value, SecretStr) else value
                )
                break
    return found
