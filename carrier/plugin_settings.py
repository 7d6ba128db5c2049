"""``SettingsRegistry``: plugins' settings classes by namespace.

Kept free of pydantic imports so that loading plugins (``carrier --help``) stays
cheap: a plugin may declare its class as an import string, resolved on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError, PluginContractError, UnknownNameError

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["SettingsRegistry", "overrides_from_character"]


class SettingsRegistry:
    """Plugins' settings classes by namespace, filled by ``carrier_add_settings``.

    ``get(namespace)`` validates the class once (environment, ``.env``, then
    per-agent overrides) and caches it. Errors become ``ConfigurationError`` naming
    the variable; secret values never appear in them.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseModel] | str] = {}
        self._values: dict[str, BaseModel] = {}

    def add(self, namespace: str, settings_class: type[BaseModel] | str) -> None:
        """Declare ``namespace``'s settings class (a pydantic-settings ``BaseSettings``),
        or an import string ``"package.module:Class"`` resolved on first use."""
        existing = self._classes.get(namespace)
        if existing is not None and existing is not settings_class:
            raise PluginContractError(
                f"Two plugins declare settings namespace {namespace!r}: "
                f"{existing!r} and {settings_class!r}."
            )
        self._classes[namespace] = settings_class

    def namespaces(self) -> list[str]:
        return sorted(self._classes)

    def settings_class(self, namespace: str) -> type[BaseModel]:
        """The class of ``namespace``, importing it if it was declared as a string."""
        if namespace not in self._classes:
            raise UnknownNameError("settings namespace", namespace, self._classes)
        declared = self._classes[namespace]
        if isinstance(declared, str):
            module, _, attribute = declared.partition(":")
            try:
                declared = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError) as exc:
                raise PluginContractError(
                    f"Settings namespace {namespace!r} names {self._classes[namespace]!r}, "
                    f"which cannot be imported: {exc}."
                ) from exc
            self._classes[namespace] = declared
        return declared

    def get(self, namespace: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """The validated settings object of ``namespace``."""
        if overrides:
            return self._validate(namespace, dict(overrides))
        if namespace not in self._values:
            self._values[namespace] = self._validate(namespace, {})
        return self._values[namespace]

    def _validate(self, namespace: str, values: dict[str, Any]) -> BaseModel:
        from pydantic import ValidationError

        from carrier.settings import settings_error_message

        settings_class = self.settings_class(namespace)
        try:
            return settings_class(**values)
        except ValidationError as exc:
            config = getattr(settings_class, "model_config", {})
            prefix = str(config.get("env_prefix", f"CARRIER_{namespace.upper()}_")).rstrip("_")
            raise ConfigurationError(settings_error_message(prefix, exc)) from None


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
                secret = getattr(value, "get_secret_value", None)
                found[key[len(prefix) :].lower()] = secret() if callable(secret) else value
                break
    return found
