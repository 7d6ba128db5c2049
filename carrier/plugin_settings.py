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

__all__ = ["SettingsRegistry", "character_overrides", "overrides_from_character"]


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

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._classes

    def settings_class(self, namespace: str) -> type[BaseModel]:
        """The class of ``namespace``, importing it if it was declared as a string.

        The kernel reads ``CARRIER_<NAMESPACE>_*`` for every namespace: a class that
        sets no ``env_prefix`` gets that one (and ``.env``), through a subclass made
        here; a class whose ``env_prefix`` is anything else is a contract error,
        since its variables would be silently ignored.

        Raises:
            UnknownNameError: No plugin declared ``namespace``.
            PluginContractError: The class cannot be imported, is not a
                pydantic-settings ``BaseSettings``, or reads another prefix.
        """
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
            declared = _with_carrier_prefix(namespace, declared)
            self._classes[namespace] = declared
        elif not getattr(declared, "_carrier_prefix_checked", False):
            declared = _with_carrier_prefix(namespace, declared)
            self._classes[namespace] = declared
        return declared

    def get(self, namespace: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """The validated settings object of ``namespace`` (cached without overrides)."""
        if overrides:
            return self._validate(namespace, dict(overrides), {})
        if namespace not in self._values:
            self._values[namespace] = self._validate(namespace, {}, {})
        return self._values[namespace]

    def for_character(self, namespace: str, settings: Mapping[str, Any], *, character: str) -> Any:
        """The settings of ``namespace`` for one agent: ``CARRIER_<NS>_*`` from the
        environment and ``.env``, overridden by the character's ``settings`` and
        ``secrets`` named ``<NS>_<FIELD>`` (or ``CARRIER_<NS>_<FIELD>``).

        Raises:
            ConfigurationError: A value is invalid; the message names the variable,
                or the character's setting and the character.
        """
        found = character_overrides(namespace, settings)
        if not found:
            return self.get(namespace)
        overrides = {field: value for field, (_, value) in found.items()}
        named = {field: f"{key} of character {character!r}" for field, (key, _) in found.items()}
        return self._validate(namespace, overrides, named)

    def _validate(
        self, namespace: str, values: dict[str, Any], named: Mapping[str, str]
    ) -> BaseModel:
        from pydantic import ValidationError

        from carrier.settings import format_validation_error

        settings_class = self.settings_class(namespace)
        try:
            return settings_class(**values)
        except ValidationError as exc:
            prefix = _prefix(namespace).rstrip("_")
            lines = [f"Invalid settings of plugin namespace {namespace!r}:"]
            for field, reason in format_validation_error(exc):
                where = named.get(field.split(".")[0].split("[")[0])
                lines.append(f"  {where or f'{prefix}_{field.upper()}'}: {reason}")
            raise ConfigurationError("\n".join(lines)) from None


def _prefix(namespace: str) -> str:
    return f"CARRIER_{namespace.upper()}_"


def _with_carrier_prefix(namespace: str, declared: Any) -> type[BaseModel]:
    """``declared``, or a subclass of it reading ``CARRIER_<NS>_*`` and ``.env``."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    if not (isinstance(declared, type) and issubclass(declared, BaseSettings)):
        raise PluginContractError(
            f"Settings namespace {namespace!r} declares {declared!r}, which is not a "
            f"pydantic-settings BaseSettings subclass; subclass "
            f"pydantic_settings.BaseSettings so that {_prefix(namespace)}* variables apply."
        )
    prefix = str(declared.model_config.get("env_prefix") or "")
    if prefix.upper() == _prefix(namespace):
        declared._carrier_prefix_checked = True  # type: ignore[attr-defined]
        return declared
    if prefix:
        raise PluginContractError(
            f"Settings class {declared.__qualname__} of namespace {namespace!r} reads "
            f"env_prefix {prefix!r}, so {_prefix(namespace)}* variables would be ignored; "
            f"remove its env_prefix (Carrier applies {_prefix(namespace)!r}) or set that one."
        )
    if "env_file" in declared.model_config:
        config = SettingsConfigDict(env_prefix=_prefix(namespace))
    else:
        # a project's .env holds every plugin's variables, not only this one's
        config = SettingsConfigDict(env_prefix=_prefix(namespace), env_file=".env", extra="ignore")
    derived = type(
        declared.__name__,
        (declared,),
        {"model_config": config, "__module__": declared.__module__, "__doc__": declared.__doc__},
    )
    derived.__qualname__ = declared.__qualname__
    derived._carrier_prefix_checked = True  # type: ignore[attr-defined]
    return derived


def character_overrides(namespace: str, settings: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """``field -> (the character's key, value)`` for ``namespace`` from a character's
    ``settings``/``secrets`` (``OPENAI_API_KEY`` and ``CARRIER_OPENAI_API_KEY`` both
    set ``api_key`` of namespace ``openai``); secret values are unwrapped."""
    found: dict[str, tuple[str, Any]] = {}
    prefixes = (_prefix(namespace), f"{namespace.upper()}_")
    for key, value in settings.items():
        for prefix in prefixes:
            if key.upper().startswith(prefix):
                secret = getattr(value, "get_secret_value", None)
                found[key[len(prefix) :].lower()] = (key, secret() if callable(secret) else value)
                break
    return found


def overrides_from_character(namespace: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per-agent overrides for ``namespace`` from a character's ``settings``/``secrets``.

    ``CARRIER_OPENAI_API_KEY`` and ``OPENAI_API_KEY`` both map to ``api_key`` of
    namespace ``openai``.
    """
    return {field: value for field, (_, value) in character_overrides(namespace, settings).items()}
