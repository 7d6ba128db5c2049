"""Characters: the agent's personality as data, in ElizaOS's v0, v1 and v2 shapes.

``load_character(path)`` reads JSON or YAML and returns a validated ``Character``;
a bad file raises ``CharacterError`` whose lines read ``file: field: reason``.
Unknown fields are kept (``character.model_extra``); secrets become ``SecretStr``.
``check_plugins`` compares the plugins a character names with those installed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from carrier.errors import FIRST_PARTY_PLUGINS, CarrierWarning, CharacterError
from carrier.settings import format_validation_error
from carrier.types import CarrierModel, Content, new_id

if TYPE_CHECKING:
    from carrier.host import PluginInfo

__all__ = [
    "Character",
    "ExampleTurn",
    "KnowledgeItem",
    "Style",
    "UnsupportedPluginWarning",
    "check_plugins",
    "load_character",
    "parse_character",
    "plugin_name",
]


def _listify(value: Any) -> Any:
    """ElizaOS allows a string where a list of strings is meant."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    return value


class Style(CarrierModel):
    """How the agent writes: everywhere, in chat, in posts."""

    model_config = ConfigDict(extra="allow")

    all: list[str] = Field(default_factory=list)
    chat: list[str] = Field(default_factory=list)
    post: list[str] = Field(default_factory=list)

    _as_list = field_validator("all", "chat", "post", mode="before")(lambda cls, v: _listify(v))


class ExampleTurn(CarrierModel):
    """One turn of an example conversation; v0 wrote ``user``, v1/v2 write ``name``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    content: Content

    @model_validator(mode="before")
    @classmethod
    def _user_to_name(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value and "user" in value:
            value = {**value, "name": value["user"]}
        if isinstance(value, dict) and isinstance(value.get("content"), str):
            value = {**value, "content": {"text": value["content"]}}
        return value


class KnowledgeItem(CarrierModel):
    """A knowledge source: inline text, a file, or a directory of .md/.txt files."""

    text: str | None = None
    path: str | None = None
    directory: str | None = None
    shared: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"text": value}
        if isinstance(value, dict) and isinstance(value.get("directory"), dict):
            inner = value["directory"]
            return {**value, "directory": inner.get("path"), "shared": inner.get("shared", False)}
        return value

    @model_validator(mode="after")
    def _one_source(self) -> KnowledgeItem:
        if sum(x is not None for x in (self.text, self.path, self.directory)) != 1:
            raise ValueError("give exactly one of a string, {path} or {directory: {path}}")
        return self


class Character(CarrierModel):
    """An agent's personality. Accepts ElizaOS v0, v1 and v2 character files."""

    model_config = ConfigDict(extra="allow")

    id: str = ""
    name: str = Field(min_length=1)
    username: str | None = None
    system: str | None = None
    bio: list[str] = Field(default_factory=list)
    lore: list[str] = Field(default_factory=list)
    message_examples: list[list[ExampleTurn]] = Field(default_factory=list)
    post_examples: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    knowledge: list[KnowledgeItem] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)
    clients: list[str] = Field(default_factory=list)
    model_provider: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    style: Style = Field(default_factory=Style)
    templates: dict[str, str] = Field(default_factory=dict)

    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file the character was loaded from (relative knowledge paths start there)."""
        return self._source_path

    _as_list = field_validator(
        "bio", "lore", "topics", "adjectives", "post_examples", mode="before"
    )(lambda cls, v: _listify(v))

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name must not be blank")
        return value.strip()

    @field_validator("message_examples", mode="before")
    @classmethod
    def _v2_examples(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            item["examples"] if isinstance(item, dict) and "examples" in item else item
            for item in value
        ]

    @field_validator("settings", mode="before")
    @classmethod
    def _secret_settings(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("secrets"), dict):
            value = {
                **value,
                "secrets": {k: SecretStr(str(v)) for k, v in value["secrets"].items()},
            }
        return value

    @field_validator("plugins", mode="before")
    @classmethod
    def _plugin_strings(cls, value: Any) -> Any:
        return _listify(value)

    @model_validator(mode="after")
    def _default_id(self) -> Character:
        if not self.id:
            self.id = new_id(f"agent:{self.name}")
        return self

    def all_secrets(self) -> dict[str, Any]:
        """``settings`` merged with ``settings.secrets`` and top-level ``secrets``."""
        merged: dict[str, Any] = {k: v for k, v in self.settings.items() if k != "secrets"}
        merged.update(self.settings.get("secrets", {}))
        merged.update(self.secrets)
        return merged


def parse_character(data: Any, *, source: str = "<character>") -> Character:
    """Validate already-parsed character data; ``CharacterError`` when invalid."""
    if not isinstance(data, dict):
        reason = f"expected an object with a 'name', found {type(data).__name__}"
        raise CharacterError(source, [("(top level)", reason)])
    try:
        return Character.model_validate(data)
    except ValidationError as exc:
        raise CharacterError(source, format_validation_error(exc)) from None


def load_character(path: str | Path) -> Character:
    """Read a character file (``.json``, ``.yaml`` or ``.yml``) and validate it."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharacterError(str(file), [("(file)", "no such file; check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CharacterError(str(file), [("(file)", f"cannot be read: {exc}")]) from None
    if file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
            reason = getattr(exc, "problem", None) or str(exc)
            raise CharacterError(str(file), [(where, f"invalid YAML: {reason}")]) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CharacterError(
                str(file), [(f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}")]
            ) from None
    character = parse_character(data, source=str(file))
    character._source_path = file.resolve()
    return character


#: ElizaOS plugin names that map to a Carrier plugin of another name.
_ALIASES = {"local-ai": "local", "ollama": "openai", "openrouter": "openai"}

#: Package scopes of ElizaOS plugins (``@elizaos/plugin-node``, ``@elizaos-plugins/...``).
_ELIZAOS_SCOPES = ("@elizaos/", "@elizaos-plugins/")


class UnsupportedPluginWarning(CarrierWarning):
    """A character names ElizaOS plugins that Carrier has no equivalent for.

    The agent starts without them; ``plugins`` lists what was named, as written.
    """

    def __init__(self, source: str, plugins: Sequence[str]) -> None:
        self.source = source
        self.plugins = list(plugins)
        names = ", ".join(repr(p) for p in self.plugins)
        entry_points = ", ".join(repr(plugin_name(p)) for p in self.plugins)
        noun = "plugin" if len(self.plugins) == 1 else "plugins"
        super().__init__(
            f"{source}: plugins: Carrier has no equivalent of the ElizaOS {noun} {names}; "
            f"the agent runs without them. Remove them from the character, or install "
            f"Carrier plugins that provide the entry points {entry_points}."
        )


def plugin_name(declared: str) -> str:
    """``@elizaos/plugin-openai``, ``carrier-plugin-openai`` and ``openai`` → ``openai``."""
    name = declared.strip().lower()
    for prefix in (
        "@elizaos/plugin-",
        "@elizaos-plugins/plugin-",
        "carrier-plugin-",
        "carrier_plugin_",
        "plugin-",
    ):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return _ALIASES.get(name, name)


def _is_elizaos(declared: str) -> bool:
    return declared.strip().lower().startswith(_ELIZAOS_SCOPES)


def _installed(
    installed: Iterable[str] | Mapping[str, PluginInfo],
) -> tuple[set[str], dict[str, str]]:
    """Loaded plugin names, and the load error of each plugin whose import failed."""
    if not isinstance(installed, Mapping):
        return set(installed), {}
    loaded: set[str] = set()
    failed: dict[str, str] = {}
    for name, info in installed.items():
        error = getattr(info, "error", None)
        if error:
            failed[name] = str(error)
        else:
            loaded.add(name)
    return loaded, failed


def check_plugins(
    character: Character,
    installed: Iterable[str] | Mapping[str, PluginInfo],
    *,
    source: str,
    failed: Mapping[str, str] | None = None,
) -> None:
    """Check the plugins a character names against those installed.

    A plugin that is installed and loaded passes. One that is installed but failed
    to import, a Carrier name that is not installed, and an ElizaOS name whose
    first-party Carrier plugin is not installed (with its ``pip install`` command)
    raise one ``CharacterError`` listing them all. ElizaOS plugins that Carrier has
    no equivalent for (``@elizaos/plugin-twitter``) are skipped with one
    :class:`UnsupportedPluginWarning` naming them all.

    Args:
        character: The character whose ``plugins`` are checked.
        installed: Names of the loaded plugins, or the host's
            :attr:`~carrier.host.PluginHost.plugins` (whose entries with an ``error``
            failed to load).
        source: The file or agent named in messages.
        failed: Entry-point name → load error of plugins whose import failed, in
            addition to those ``installed`` records.
    """
    loaded, failures = _installed(installed)
    failures.update(failed or {})
    problems: list[tuple[str, str]] = []
    unsupported: list[str] = []
    for index, declared in enumerate(character.plugins):
        name = plugin_name(declared)
        field = f"plugins[{index}]"
        if name in failures:
            problems.append(
                (field, f"{declared!r} is installed but failed to load: {failures[name]}")
            )
        elif name in loaded:
            continue
        elif name in FIRST_PARTY_PLUGINS:
            problems.append(
                (
                    field,
                    f"no plugin named {declared!r} is installed; install it with: "
                    f"pip install {FIRST_PARTY_PLUGINS[name]}",
                )
            )
        elif _is_elizaos(declared):
            unsupported.append(declared)
        else:
            problems.append(
                (
                    field,
                    f"no plugin named {declared!r} is installed; install a distribution "
                    f"that provides the {name!r} entry point, or remove it from the list",
                )
            )
    if problems:
        raise CharacterError(source, problems)
    if unsupported:
        warnings.warn(UnsupportedPluginWarning(source, unsupported), stacklevel=2)
