"""``Registry[T]``: name → factory, filled by the ``carrier_register_*`` hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from carrier.errors import PluginContractError, UnknownNameError

if TYPE_CHECKING:
    from carrier.settings import SettingsRegistry

__all__ = ["Registry", "RegistryEntry"]

T = TypeVar("T")

#: Plugin name of the kernel's own defaults; other plugins override them silently.
BUILTIN_PLUGIN = "carrier.builtin"


@dataclass(frozen=True, slots=True)
class RegistryEntry(Generic[T]):
    """One registered factory and who registered it."""

    name: str
    factory: Callable[..., T]
    plugin: str
    distribution: str | None
    settings: str | None
    description: str


class Registry(Generic[T]):
    """Named factories of one kind (models, actions, stores, ...).

    Plugins call :meth:`add` from their ``carrier_register_<kind>`` hook. A second
    plugin adding the same name raises ``PluginContractError`` naming both
    distributions; the kernel's builtin defaults give way to any plugin.
    """

    def __init__(
        self,
        kind: str,
        *,
        settings: SettingsRegistry | None = None,
        distributions: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}
        self._settings = settings
        self._distributions = distributions or {}
        self._plugin = BUILTIN_PLUGIN

    def _owned_by(self, plugin: str) -> None:
        """Attribute the following :meth:`add` calls to ``plugin`` (the host sets it)."""
        self._plugin = plugin

    def add(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        settings: str | None = None,
        description: str = "",
    ) -> None:
        """Register ``factory`` under ``name``.

        Args:
            name: The name users write (``"openai"``, ``"sqlite"``, ``"REPLY"``).
            factory: Builds the object; called as ``factory(settings_obj, **kw)`` when
                ``settings`` names a namespace, else ``factory(**kw)``.
            settings: The ``carrier_add_settings`` namespace whose validated settings
                object the factory receives first.
            description: One line shown by ``carrier plugins`` and ``--help``.
        """
        if not name or not isinstance(name, str):
            raise PluginContractError(
                f"Plugin {self._plugin!r} registered a {self.kind} with the name {name!r}; "
                f"a name must be a non-empty string."
            )
        if not callable(factory):
            raise PluginContractError(
                f"Plugin {self._plugin!r} registered {self.kind} {name!r} with "
                f"{factory!r}, which is not callable; pass a class or a function."
            )
        entry = RegistryEntry(
            name=name,
            factory=factory,
            plugin=self._plugin,
            distribution=self._distributions.get(self._plugin),
            settings=settings,
            description=description,
        )
        existing = self._entries.get(name)
        if existing is not None and existing.plugin != entry.plugin:
            if existing.plugin == BUILTIN_PLUGIN:
                self._entries[name] = entry
                return
            if entry.plugin == BUILTIN_PLUGIN:
                return
            raise PluginContractError(
                f"Two plugins register a {self.kind} named {name!r}: "
                f"{existing.plugin!r} (distribution {existing.distribution or 'unknown'}) "
                f"and {entry.plugin!r} (distribution {entry.distribution or 'unknown'}). "
                f"Uninstall one, or disable one with CARRIER_DISABLE_PLUGINS={entry.plugin}."
            )
        self._entries[name] = entry

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry for ``name``; ``UnknownNameError`` with suggestions if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def create(self, name: str, **overrides: Any) -> T:
        """Build the object registered under ``name``."""
        entry = self.entry(name)
        if entry.settings is not None and self._settings is not None:
            return entry.factory(self._settings.get(entry.settings), **overrides)
        return entry.factory(**overrides)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[RegistryEntry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(self.names())}>"
