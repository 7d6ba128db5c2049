"""``PluginHost``: one pluggy ``PluginManager`` per host, entry-point loading,
allow/block lists, tracing, and the registries the hooks fill.

There is no module-global manager: every runtime, CLI call and test builds its own
host, so a test can register plugins in-process and throw them away.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pluggy

from carrier import hookspecs
from carrier.errors import (
    ConfigurationError,
    PluginContractError,
    PluginError,
    PluginLoadError,
    UnknownNameError,
)
from carrier.plugin_settings import SettingsRegistry
from carrier.registry import BUILTIN_PLUGIN, Registry

if TYPE_CHECKING:
    from carrier.protocols import (
        Action,
        ActionSource,
        Client,
        Command,
        Evaluator,
        Executor,
        MemoryStore,
        Model,
        Provider,
        TaskWorker,
    )
    from carrier.settings import CarrierSettings
    from carrier.types import Event

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "PluginInfo", "hookimpl"]

ENTRY_POINT_GROUP = "carrier"
hookimpl = pluggy.HookimplMarker("carrier")
logger = logging.getLogger("carrier.plugins")

T = TypeVar("T")

#: Registry kind (hook suffix) → singular noun used in messages.
_KINDS = {
    "models": "model",
    "actions": "action",
    "action_sources": "action source",
    "providers": "provider",
    "evaluators": "evaluator",
    "stores": "store",
    "executors": "executor",
    "clients": "client",
    "commands": "command",
    "task_workers": "task worker",
}


@dataclass
class PluginInfo:
    """What ``carrier plugins`` shows about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class LoadOptions:
    """What decides which plugins load. Read from ``CarrierSettings`` when one is
    given, else straight from the environment, so listing plugins (``carrier --help``)
    never pays for validating every setting."""

    plugins: list[str]
    disable_plugins: list[str]
    disable_plugin_autoload: bool
    trace_plugins: bool

    @classmethod
    def from_settings(cls, settings: CarrierSettings) -> LoadOptions:
        return cls(
            _split(settings.plugins),
            _split(settings.disable_plugins),
            settings.disable_plugin_autoload,
            settings.trace_plugins,
        )

    @classmethod
    def from_environment(cls) -> LoadOptions:
        env = os.environ
        return cls(
            _split(env.get("CARRIER_PLUGINS")),
            _split(env.get("CARRIER_DISABLE_PLUGINS")),
            _flag(env.get("CARRIER_DISABLE_PLUGIN_AUTOLOAD")),
            _flag(env.get("CARRIER_TRACE_PLUGINS")),
        )


class PluginHost:
    """Loads plugins and exposes what they register.

    Args:
        autoload: Load the ``carrier`` entry-point group. Default: true unless
            ``CARRIER_DISABLE_PLUGIN_AUTOLOAD`` is set.
        settings: Kernel settings; read from the environment and ``.env`` on first
            use when omitted (the plugin-loading variables are then read from the
            environment directly).
        builtins: Register the kernel's stdlib-only defaults (trylast).
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        settings: CarrierSettings | None = None,
        builtins: bool = True,
    ) -> None:
        self._carrier_settings = settings
        options = (
            LoadOptions.from_settings(settings)
            if settings is not None
            else LoadOptions.from_environment()
        )
        self.load_options = options
        self.settings = SettingsRegistry()
        self.pm = pluggy.PluginManager("carrier")
        self.pm.add_hookspecs(hookspecs)
        self.pm.hook.carrier_add_settings.call_historic(kwargs={"settings": self.settings})
        #: Plugin name → what is known about it, load failures included.
        self.plugins: dict[str, PluginInfo] = {}
        #: Plugins whose import failed; they were skipped.
        self.load_errors: list[PluginLoadError] = []
        self._registries: dict[str, Registry[Any]] = {}
        self._observers: list[Callable[..., Any]] | None = None
        self._trace = options.trace_plugins
        if self._trace:
            self.pm.add_hookcall_monitoring(self._trace_before, self._trace_after)
        if builtins:
            from carrier.builtin import plugin as builtin_plugin

            self.register(builtin_plugin, name=BUILTIN_PLUGIN)
        if autoload is None:
            autoload = not options.disable_plugin_autoload
        if autoload:
            self.load_entry_points()

    @property
    def carrier_settings(self) -> CarrierSettings:
        """Kernel settings (validated on first use; ``ConfigurationError`` if invalid)."""
        if self._carrier_settings is None:
            from carrier.settings import load_settings

            self._carrier_settings = load_settings()
        return self._carrier_settings

    # ---- loading ----------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import and register every plugin in the ``carrier`` entry-point group.

        Honours ``CARRIER_PLUGINS`` (allowlist) and ``CARRIER_DISABLE_PLUGINS``.
        A plugin whose import fails is recorded in :attr:`load_errors` and skipped.
        """
        allow = self.load_options.plugins
        block = set(self.load_options.disable_plugins)
        found = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in allow:
            if name not in found:
                raise UnknownNameError("installed plugin (in CARRIER_PLUGINS)", name, found)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in block or (allow and ep.name not in allow):
                continue
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            if self.pm.has_plugin(ep.name):
                other = self.plugins.get(ep.name)
                raise PluginContractError(
                    f"Two distributions install a plugin named {ep.name!r}: "
                    f"{other.distribution if other else 'unknown'} and {info.distribution}. "
                    f"Uninstall one of them."
                )
            try:
                module = ep.load()
            except Exception as exc:  # any import failure must not stop the others
                error = PluginLoadError(ep.name, info.distribution, exc)
                info.error = str(error)
                self.plugins[ep.name] = info
                self.load_errors.append(error)
                logger.warning("%s", error)
                continue
            self.register(module, name=ep.name, info=info)

    def register(self, plugin: object, *, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object in-process: a module, or an object whose
        methods carry ``@carrier.hookimpl``."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginContractError(
                f"Plugin {name!r} has an invalid hook implementation: {exc}. "
                f"Compare its signature with docs/hooks.md."
            ) from exc
        except ValueError as exc:
            raise PluginContractError(
                f"A plugin named {name!r} is already registered: {exc}."
            ) from exc
        record = info or PluginInfo(name=name)
        record.hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = record
        self._invalidate()

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._invalidate()

    def check_pending(self) -> None:
        """Raise if a registered plugin implements a hook that has no spec."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginContractError(f"{exc}. Check the hook's name in docs/hooks.md.") from exc

    def _invalidate(self) -> None:
        self._registries.clear()
        self._observers = None

    # ---- registries ---------------------------------------------------------------

    def _registry(self, kind: str) -> Registry[Any]:
        registry = self._registries.get(kind)
        if registry is not None:
            return registry
        distributions = {n: i.distribution for n, i in self.plugins.items() if i.distribution}
        registry = Registry[Any](_KINDS[kind], settings=self.settings, distributions=distributions)
        hook = getattr(self.pm.hook, f"carrier_register_{kind}")
        # get_hookimpls() is in ascending priority; call the builtins (trylast) first.
        for impl in hook.get_hookimpls():
            registry._owned_by(impl.plugin_name)
            if self._trace:
                logger.info("hook carrier_register_%s -> %s", kind, impl.plugin_name)
            try:
                impl.function(**dict.fromkeys(impl.argnames, registry))
            except PluginError:
                raise
            except Exception as exc:
                error = PluginLoadError(
                    impl.plugin_name, registry._distributions.get(impl.plugin_name), exc
                )
                self.load_errors.append(error)
                if impl.plugin_name in self.plugins:
                    self.plugins[impl.plugin_name].error = str(error)
                logger.warning("%s", error)
        self._registries[kind] = registry
        return registry

    @property
    def models(self) -> Registry[Model]:
        return self._registry("models")

    @property
    def actions(self) -> Registry[Action]:
        return self._registry("actions")

    @property
    def action_sources(self) -> Registry[ActionSource]:
        return self._registry("action_sources")

    @property
    def providers(self) -> Registry[Provider]:
        return self._registry("providers")

    @property
    def evaluators(self) -> Registry[Evaluator]:
        return self._registry("evaluators")

    @property
    def stores(self) -> Registry[MemoryStore]:
        return self._registry("stores")

    @property
    def executors(self) -> Registry[Executor]:
        return self._registry("executors")

    @property
    def clients(self) -> Registry[Client]:
        return self._registry("clients")

    @property
    def commands(self) -> Registry[Command]:
        return self._registry("commands")

    @property
    def task_workers(self) -> Registry[TaskWorker]:
        return self._registry("task_workers")

    # ---- the memory store ------------------------------------------------------------

    def store_url(self, url: str | None = None) -> tuple[str, str]:
        """``(scheme, url)`` of the store to open: ``url``, else ``CARRIER_DATABASE_URL``,
        else a SQLite file in the user's data folder when a ``sqlite`` store is
        installed, else ``memory://``."""
        if url is None:
            url = self.carrier_settings.database_url
        if url is None:
            from carrier.settings import data_dir

            url = (
                f"sqlite:///{data_dir() / 'carrier.db'}"
                if "sqlite" in self.stores
                else ("memory://")
            )
        scheme = url.partition("://")[0].split("+")[0].lower() if "://" in url else ""
        if not scheme:
            raise ConfigurationError(
                f"CARRIER_DATABASE_URL={url!r} has no scheme; write e.g. "
                f"'sqlite:///path/to/carrier.db' or 'memory://'."
            )
        return scheme, url

    async def open_store(self, url: str | None = None) -> MemoryStore:
        """Create and open the store for ``url`` (see :meth:`store_url`); the caller
        closes it. Runtimes that share one store are given it with ``store=``."""
        scheme, resolved = self.store_url(url)
        store = self.stores.create(scheme, url=resolved)
        await store.open()
        return store

    # ---- decisions and events --------------------------------------------------------

    def choose(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a ``carrier_choose_*`` hook; the first non-``None`` answer, or ``None``."""
        result = getattr(self.pm.hook, hook_name)(**kwargs)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise PluginContractError(
                f"An implementation of {hook_name} is 'async def'; choose hooks must be "
                f"plain 'def' functions, because a coroutine always counts as an answer."
            )
        return result

    @property
    def has_observers(self) -> bool:
        """Whether any plugin implements ``carrier_on_event``."""
        return bool(self._observer_functions())

    def _observer_functions(self) -> list[Callable[..., Any]]:
        if self._observers is None:
            self._observers = [
                impl.function for impl in self.pm.hook.carrier_on_event.get_hookimpls()
            ]
        return self._observers

    async def emit(self, event: Event) -> None:
        """Deliver ``event`` to every observer; await async ones concurrently.

        An observer that raises is logged; it never stops the loop or the others. Async
        observers get ``CARRIER_OBSERVER_TIMEOUT_S`` together: one still running then
        is cancelled and logged, so a slow observer never stalls the stages.
        """
        pending: list[Awaitable[Any]] = []
        for function in self._observer_functions():
            try:
                result = function(event=event)
            except Exception:
                logger.exception("carrier_on_event observer %r failed", function)
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        if pending:
            tasks = [asyncio.ensure_future(p) for p in pending]
            done, late = await asyncio.wait(tasks, timeout=self.carrier_settings.observer_timeout_s)
            for task in late:
                task.cancel()
                logger.error(
                    "carrier_on_event observer %r took over %.1f s (CARRIER_OBSERVER_TIMEOUT_S) "
                    "on a %s event; it was cancelled.",
                    task.get_coro(),
                    self.carrier_settings.observer_timeout_s,
                    event.type.value,
                )
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("carrier_on_event observer failed: %r", task.exception())

    def plugin_list(self) -> list[PluginInfo]:
        """Every plugin, load failures included, by name."""
        return [self.plugins[name] for name in sorted(self.plugins)]

    # ---- tracing --------------------------------------------------------------------

    @staticmethod
    def _trace_before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(impl.plugin_name for impl in impls)
        logger.info("hook %s(%s) -> [%s]", hook_name, ", ".join(kwargs), names)

    @staticmethod
    def _trace_after(
        outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        logger.info("hook %s returned %r", hook_name, cast(Any, outcome).get_result())
