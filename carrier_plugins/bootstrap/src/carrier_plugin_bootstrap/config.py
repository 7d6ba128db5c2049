"""``settings_for(runtime)``: the bootstrap settings of one agent, cached per runtime.

Kept apart from :mod:`carrier_plugin_bootstrap.settings` so that registering the
plugin's actions, providers and evaluators imports no pydantic-settings; the
class is imported the first time a runtime needs it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from carrier.errors import UnknownNameError
from carrier.plugin_settings import overrides_from_character

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_bootstrap.settings import BootstrapSettings

__all__ = ["NAMESPACE", "settings_for"]

#: The settings namespace (``CARRIER_BOOTSTRAP_*``; ``BOOTSTRAP_*`` in a character).
NAMESPACE = "bootstrap"

_CACHE: weakref.WeakKeyDictionary[AgentRuntime, BootstrapSettings] = weakref.WeakKeyDictionary()


def settings_for(runtime: AgentRuntime) -> BootstrapSettings:
    """The validated settings for ``runtime``'s agent (cached per runtime).

    The host's ``bootstrap`` namespace is used when the plugin is registered
    (environment, ``.env``, then the character's ``BOOTSTRAP_*`` settings);
    otherwise the class is read from the environment directly.
    """
    cached = _CACHE.get(runtime)
    if cached is not None:
        return cached
    from carrier_plugin_bootstrap.settings import BootstrapSettings

    overrides = overrides_from_character(NAMESPACE, runtime.character.all_secrets())
    try:
        found = runtime.host.settings.get(NAMESPACE, overrides)
    except UnknownNameError:
        found = BootstrapSettings(**overrides)
    settings = found if isinstance(found, BootstrapSettings) else BootstrapSettings(**overrides)
    _CACHE[runtime] = settings
    return settings
