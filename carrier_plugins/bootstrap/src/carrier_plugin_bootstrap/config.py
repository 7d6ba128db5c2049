"""``settings_for(runtime)``: the bootstrap settings of one agent, cached per runtime;
``apply_action_roles(runtime)``: the per-agent role overrides, checked and applied.

Kept apart from :mod:`carrier_plugin_bootstrap.settings` so that registering the
plugin's actions, providers and evaluators imports no pydantic-settings; the
class is imported the first time a runtime needs it.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError
from carrier.plugin_settings import overrides_from_character

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_bootstrap.settings import BootstrapSettings

#: Runtimes whose character's role overrides were checked.
_CHECKED: weakref.WeakSet[AgentRuntime] = weakref.WeakSet()

__all__ = ["NAMESPACE", "ROLES_VARIABLE", "apply_action_roles", "settings_for"]

#: The settings namespace (``CARRIER_BOOTSTRAP_*``; ``BOOTSTRAP_*`` in a character).
NAMESPACE = "bootstrap"
#: The environment variable of the role overrides.
ROLES_VARIABLE = "CARRIER_BOOTSTRAP_ACTION_ROLES"


def settings_for(runtime: AgentRuntime) -> BootstrapSettings:
    """The validated settings for ``runtime``'s agent (``runtime.plugin_settings``:
    environment, ``.env``, then the character's ``BOOTSTRAP_*`` settings; cached per
    runtime). The character's role overrides are checked first, so their message
    names the character's setting and the bad roles.

    Raises:
        ConfigurationError: A setting is invalid; the message names it (the
            environment variable, or the character's setting) and the valid values.
    """
    from carrier_plugin_bootstrap.settings import BootstrapSettings

    if runtime not in _CHECKED:  # once per runtime: this runs on every provider call
        overrides = overrides_from_character(NAMESPACE, runtime.character.all_secrets())
        if "action_roles" in overrides:
            _character_roles(runtime, overrides["action_roles"])
        _CHECKED.add(runtime)
    return runtime.plugin_settings(NAMESPACE, BootstrapSettings)


def _character_key(runtime: AgentRuntime) -> str:
    """How the character spells its role overrides (``BOOTSTRAP_ACTION_ROLES``)."""
    for key in runtime.character.all_secrets():
        if key.upper() in (ROLES_VARIABLE, ROLES_VARIABLE.removeprefix("CARRIER_")):
            return key
    return ROLES_VARIABLE.removeprefix("CARRIER_")


def _roles_setting(runtime: AgentRuntime) -> str:
    """The setting the role overrides came from, as messages name it."""
    overrides = overrides_from_character(NAMESPACE, runtime.character.all_secrets())
    if "action_roles" in overrides:
        return f"{_character_key(runtime)} of character {runtime.character.name!r}"
    return ROLES_VARIABLE


def _character_roles(runtime: AgentRuntime, value: Any) -> dict[str, Any]:
    """The character's role overrides, parsed; a precise error if they are not."""
    from carrier_plugin_bootstrap.settings import parse_action_roles

    try:
        return dict(parse_action_roles(value))
    except ValueError as exc:
        raise ConfigurationError(f"Invalid {_roles_setting(runtime)}: {exc}.") from None


def apply_action_roles(runtime: AgentRuntime) -> None:
    """Give the runtime's actions the roles ``ACTION_ROLES`` sets.

    Any action registered on the runtime may be named, not only bootstrap's; the
    override is set on that runtime's instance of the action. Idempotent: every
    bootstrap action calls it from its ``setup``.

    Raises:
        ConfigurationError: A name that is no action of the runtime, or an invalid
            role; the message names the setting, the bad names and the valid ones.
            Raised from ``setup()``, it stops ``AgentRuntime.start()``: the kernel
            lets a ``ConfigurationError`` from ``setup`` through and only logs others.
    """
    roles = settings_for(runtime).action_roles or {}
    actions = runtime.actions.by_name
    unknown = [name for name in roles if name not in actions]
    for name, role in roles.items():
        if name in actions:
            # an instance attribute shadows the class default for this runtime only
            actions[name].required_role = role  # type: ignore[misc]
    if unknown:  # the known ones are applied first, should the error be swallowed
        raise ConfigurationError(_unknown_actions(_roles_setting(runtime), unknown, actions))


def _unknown_actions(setting: str, unknown: list[str], actions: Iterable[str]) -> str:
    names = sorted(actions)
    listed = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        listed.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    noun = "an action" if len(unknown) == 1 else "actions"
    return (
        f"{setting} names {noun} this agent does not have: "
        f"{', '.join(listed)}. Its actions are: {', '.join(names) or 'none'}. "
        f"Fix the name, or install the plugin that provides it."
    )
