"""Carrier's exceptions and warnings.

The tree::

    CarrierError
    ├── ConfigurationError        operator must change settings or environment
    ├── InputError                a client's input is unacceptable (nothing was stored)
    │   └── AccessError           the sender may not post into or read that room
    ├── PluginError
    │   ├── PluginLoadError       a plugin's import failed; names entry point + distribution
    │   └── PluginContractError   duplicate name, wrong type, broken hook implementation
    ├── UnknownNameError          no such model/action/store/... (with "did you mean")
    ├── CharacterError            a character file is invalid: ``file: field: reason``
    ├── ModelError
    │   ├── TransientModelError   rate limit, overload, 5xx, timeout; carries ``retry_after``
    │   └── ModelRejectedError    4xx, content filter, unusable response: do not retry
    ├── StoreError                the memory store failed or was given bad data
    │   └── EmbeddingDimensionError
    └── ActionError               an action's handler failed
    ToolRetry                     control flow, not an error: the model should try again

    CarrierWarning                base of every warning Carrier emits

Messages are full sentences: what was expected, what was found, what to do.
SDK and driver exceptions never leave a plugin; they are translated ``from exc``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = [
    "FIRST_PARTY_PLUGINS",
    "AccessError",
    "ActionError",
    "CarrierError",
    "CarrierWarning",
    "CharacterError",
    "ConfigurationError",
    "EmbeddingDimensionError",
    "InputError",
    "ModelError",
    "ModelRejectedError",
    "PluginContractError",
    "PluginError",
    "PluginLoadError",
    "StoreError",
    "ToolRetry",
    "TransientModelError",
    "UnknownNameError",
]

#: Names offered by first-party plugins, mapped to the distribution that provides them.
FIRST_PARTY_PLUGINS: Mapping[str, str] = {
    "sql": "carrier-plugin-sql",
    "sqlite": "carrier-plugin-sql",
    "postgresql": "carrier-plugin-sql[postgres]",
    "postgres": "carrier-plugin-sql[postgres]",
    "local": "carrier-plugin-local",
    "openai": "carrier-plugin-openai",
    "anthropic": "carrier-plugin-anthropic",
    "bootstrap": "carrier-plugin-bootstrap",
    "http": "carrier-plugin-http",
    "serve": "carrier-plugin-http",
    "workers": "carrier-plugin-workers",
    "worker": "carrier-plugin-workers",
}


class CarrierError(Exception):
    """Base class of every error Carrier raises on purpose."""


class ConfigurationError(CarrierError):
    """Settings or environment are wrong; the operator must change them."""


class InputError(CarrierError):
    """A client's input cannot be accepted (too large, malformed); nothing was stored."""


class AccessError(InputError):
    """The sender may not use that room: a room the runtime reserves for itself, or a
    direct room that belongs to another user. Nothing was stored; clients answer 403."""


class PluginError(CarrierError):
    """A plugin could not be used."""


class PluginLoadError(PluginError):
    """A plugin's module failed to import; the other plugins still load."""

    def __init__(self, entry_point: str, distribution: str | None, cause: BaseException) -> None:
        self.entry_point = entry_point
        self.distribution = distribution
        self.cause = cause
        where = f" from distribution {distribution!r}" if distribution else ""
        super().__init__(
            f"Plugin {entry_point!r}{where} failed to load: {type(cause).__name__}: {cause}. "
            f"It was skipped; fix or reinstall it, or disable it with "
            f"CARRIER_DISABLE_PLUGINS={entry_point}."
        )


class PluginContractError(PluginError):
    """A plugin broke the contract: a duplicate name, a wrong type, a bad hook signature."""


class UnknownNameError(CarrierError):
    """No object of that kind is registered under that name (not a ``KeyError``)."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        super().__init__(self._message())

    def _message(self) -> str:
        message = f"No {self.kind} named {self.name!r}."
        close = difflib.get_close_matches(self.name, self.available, n=3, cutoff=0.6)
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        install = FIRST_PARTY_PLUGINS.get(self.name.lower())
        if install and not close:
            message += f" Install it with: pip install {install}"
        elif self.available:
            message += " Available: " + ", ".join(repr(a) for a in self.available) + "."
        else:
            message += f" No {self.kind} is registered; install a plugin that provides one."
        return message


class CharacterError(CarrierError):
    """A character file is invalid. The message reads ``file: field: reason``."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [f"{file}: {field}: {reason}" for field, reason in problems]
        super().__init__("\n".join(lines))


class ModelError(CarrierError):
    """A model backend failed to produce a response."""


class TransientModelError(ModelError):
    """A failure worth retrying: rate limit, overload, 5xx, timeout, connection error."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelRejectedError(ModelError):
    """The backend refused the request or answered unusably; retrying will not help."""


class StoreError(CarrierError):
    """The memory store failed, or was given data it cannot store."""


class EmbeddingDimensionError(StoreError):
    """An embedding's dimension differs from the one the store recorded."""

    def __init__(self, *, recorded: int, found: int) -> None:
        self.recorded = recorded
        self.found = found
        super().__init__(
            f"This store holds {recorded}-dimension embeddings but was given a "
            f"{found}-dimension one. Use the embedding model the store was built with, "
            f"or start a new database (CARRIER_DATABASE_URL) for the new model."
        )


class ActionError(CarrierError):
    """An action's handler failed."""


class ToolRetry(Exception):  # noqa: N818 - control flow, named for what it asks for
    """Raised by an action handler to ask the model to try again with this message."""


class CarrierWarning(UserWarning):
    """Base class of every warning Carrier emits."""
