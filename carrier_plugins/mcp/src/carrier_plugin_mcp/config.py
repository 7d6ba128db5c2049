"""The operator's MCP servers: the ``mcpServers`` JSON shape, ``${VAR}`` expansion, the
servers a character uses, and safe action names. Pure: imports no MCP SDK.

A server entry is Claude Desktop's (``command``/``args``/``env``/``cwd`` for stdio,
``url``/``headers`` for Streamable HTTP, ``type`` optional) plus Carrier's keys, all
optional: ``connectTimeout`` and ``callTimeout`` (seconds), ``role`` (the least role that
may call its tools), ``toolRoles`` (``{"tool": "admin"}``), ``allow`` / ``deny`` (tool
names), ``requireApproval`` (``true`` for every tool, or tool names and ``fnmatch``
patterns: a person approves each call first, docs/approvals.md) with ``approverRole``
(who may approve; ``admin`` by default), ``resources`` (feed its resources to the
``mcp_resources`` provider), ``outputMaxChars``, ``disabled`` and ``protocol``
(``"legacy"`` forces the handshake-era protocol instead of probing for 2026-07-28).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from carrier.errors import ConfigurationError
from carrier.types import Role

__all__ = [
    "ServerConfig",
    "action_name",
    "assign_action_names",
    "expand",
    "load_servers",
    "servers_for",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64
_KNOWN = {
    "type",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "connectTimeout",
    "callTimeout",
    "role",
    "toolRoles",
    "allow",
    "deny",
    "requireApproval",
    "approverRole",
    "resources",
    "outputMaxChars",
    "disabled",
    "protocol",
}


@dataclass(frozen=True)
class ServerConfig:
    """One configured MCP server (what the operator wrote, variables expanded)."""

    name: str
    transport: Literal["stdio", "http"]
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float | None = None
    call_timeout_s: float | None = None
    role: Role | None = None
    tool_roles: Mapping[str, Role] = field(default_factory=dict)
    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    #: ``True`` (every tool), or tool names and ``fnmatch`` patterns, whose calls wait
    #: for a person's approval.
    require_approval: bool | tuple[str, ...] = False
    approver_role: Role = Role.ADMIN
    resources: bool = False
    output_max_chars: int | None = None
    disabled: bool = False
    #: ``auto`` (probe 2026-07-28, fall back to the handshake) or ``legacy`` (handshake).
    protocol: Literal["auto", "legacy"] = "auto"

    def allows(self, tool: str) -> bool:
        """Whether the allow/deny lists let ``tool`` through."""
        if tool in self.deny:
            return False
        return self.allow is None or tool in self.allow

    def needs_approval(self, tool: str) -> bool:
        """Whether a call of ``tool`` waits for a person's approval (``requireApproval``)."""
        if isinstance(self.require_approval, bool):
            return self.require_approval
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.require_approval)

    def approver_for(self, tool: str) -> Role:
        """Who may approve a call of ``tool``: ``approverRole``, and never less than the
        role the tool needs (a member never decides what only an admin may call)."""
        from carrier.acting import ROLE_RANK

        needed = self.required_role(tool)
        if needed is None or ROLE_RANK[self.approver_role] >= ROLE_RANK[needed]:
            return self.approver_role
        return needed

    def required_role(self, tool: str) -> Role | None:
        """The least role that may call ``tool``: the higher of the server's and the tool's."""
        from carrier.acting import ROLE_RANK

        roles = [r for r in (self.role, self.tool_roles.get(tool)) if r is not None]
        return max(roles, key=ROLE_RANK.__getitem__) if roles else None

    def where(self) -> str:
        """What to show about the server (never a header or an environment value)."""
        if self.transport == "http":
            return self.url.split("?", 1)[0]
        return " ".join([self.command, *self.args])


def expand(value: str, *, server: str, environ: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` and ``${VAR:-default}`` replaced from the environment.

    Raises:
        ConfigurationError: A variable without a default is not set.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        raise ConfigurationError(
            f"MCP server {server!r} uses ${{{name}}}, which is not set; set the "
            f"{name} environment variable or write ${{{name}:-default}}."
        )

    return _VAR.sub(replace, value)


def _role(value: Any, *, server: str, what: str) -> Role:
    if not isinstance(value, str) or value.lower() not in {r.value for r in Role}:
        valid = ", ".join(repr(r.value) for r in Role)
        raise ConfigurationError(
            f"MCP server {server!r}: {what} is {value!r}; expected one of {valid}."
        )
    return Role(value.lower())


def _protocol(value: Any, *, server: str) -> Literal["auto", "legacy"]:
    if value == "auto":
        return "auto"
    if value == "legacy":
        return "legacy"
    raise ConfigurationError(
        f"MCP server {server!r}: 'protocol' is {value!r}; expected 'auto' or 'legacy'."
    )


def _strings(value: Any, *, server: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"MCP server {server!r}: {key!r} must be a list of strings.")
    return list(value)


def _approval(value: Any, *, server: str) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise ConfigurationError(
        f"MCP server {server!r}: 'requireApproval' is {value!r}; expected true (every "
        f"tool), false, or a non-empty list of tool names and patterns such as "
        f'["delete_*", "send_email"].'
    )


def _mapping(value: Any, *, server: str, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
    ):
        raise ConfigurationError(f"MCP server {server!r}: {key!r} must be an object of strings.")
    return {k: str(v) for k, v in value.items()}


def _seconds(value: Any, *, server: str, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(
            f"MCP server {server!r}: {key!r} must be a positive number of seconds."
        )
    return float(value)


def _chars(value: Any, *, server: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 100:
        raise ConfigurationError(
            f"MCP server {server!r}: 'outputMaxChars' must be a whole number, at least 100."
        )
    return value


def parse_server(
    name: str, entry: Any, *, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """One entry of ``mcpServers``, validated and expanded."""
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"MCP server {name!r} must be a JSON object.")
    unknown = sorted(set(entry) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"MCP server {name!r} has unknown keys {unknown}; known keys are {sorted(_KNOWN)}."
        )
    kind = str(entry.get("type") or ("http" if "url" in entry else "stdio")).lower()

    def x(value: str) -> str:
        return expand(value, server=name, environ=environ)

    common: dict[str, Any] = {
        "connect_timeout_s": _seconds(
            entry.get("connectTimeout"), server=name, key="connectTimeout"
        ),
        "call_timeout_s": _seconds(entry.get("callTimeout"), server=name, key="callTimeout"),
        "role": None
        if entry.get("role") is None
        else _role(entry["role"], server=name, what="'role'"),
        "tool_roles": {
            tool: _role(role, server=name, what=f"the role of tool {tool!r}")
            for tool, role in dict(entry.get("toolRoles") or {}).items()
        },
        "allow": None
        if entry.get("allow") is None
        else frozenset(_strings(entry["allow"], server=name, key="allow")),
        "deny": frozenset(_strings(entry.get("deny", []), server=name, key="deny")),
        "require_approval": _approval(entry.get("requireApproval", False), server=name),
        "approver_role": _role(
            entry.get("approverRole", "admin"), server=name, what="'approverRole'"
        ),
        "resources": bool(entry.get("resources", False)),
        "output_max_chars": _chars(entry.get("outputMaxChars"), server=name),
        "disabled": bool(entry.get("disabled", False)),
        "protocol": _protocol(entry.get("protocol", "auto"), server=name),
    }
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ConfigurationError(
                f"MCP server {name!r} needs a 'command' (stdio) or a 'url' (HTTP)."
            )
        args = _strings(entry.get("args", []), server=name, key="args")
        env = _mapping(entry.get("env", {}), server=name, key="env")
        cwd = entry.get("cwd")
        return ServerConfig(
            name=name,
            transport="stdio",
            command=x(command),
            args=tuple(x(a) for a in args),
            env={k: x(v) for k, v in env.items()},
            cwd=None if cwd is None else x(str(cwd)),
            **common,
        )
    if kind in ("http", "streamable-http", "streamable_http", "streamablehttp"):
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"MCP server {name!r} needs an http:// or https:// 'url'; found {url!r}."
            )
        headers = _mapping(entry.get("headers", {}), server=name, key="headers")
        return ServerConfig(
            name=name,
            transport="http",
            url=x(url),
            headers={k: x(v) for k, v in headers.items()},
            **common,
        )
    raise ConfigurationError(
        f"MCP server {name!r} has type {kind!r}; Carrier speaks 'stdio' and 'http' "
        f"(Streamable HTTP). The old SSE transport is not supported."
    )


def load_servers(
    config: str | None, *, environ: Mapping[str, str] | None = None
) -> dict[str, ServerConfig]:
    """The servers of ``CARRIER_MCP_CONFIG``: a path to a JSON file, or the JSON itself.

    Disabled servers are left out. Raises ``ConfigurationError`` naming what is wrong.
    """
    if config is None or not config.strip():
        return {}
    text = config.strip()
    source = "CARRIER_MCP_CONFIG"
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"CARRIER_MCP_CONFIG names {str(path)!r}, which cannot be read ({exc.strerror}); "
                f"give the path of an mcpServers JSON file, or the JSON itself."
            ) from exc
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})."
        ) from exc
    servers = data.get("mcpServers") if isinstance(data, Mapping) else None
    if not isinstance(servers, Mapping):
        raise ConfigurationError(
            f'{source} must be a JSON object with an "mcpServers" object of servers.'
        )
    parsed = {str(n): parse_server(str(n), e, environ=environ) for n, e in servers.items()}
    return {name: server for name, server in parsed.items() if not server.disabled}


def servers_for(
    selection: Any, configured: Mapping[str, ServerConfig], *, character: str
) -> list[ServerConfig]:
    """The configured servers a character uses: its ``MCP_SERVERS`` setting (a list or a
    comma-separated string of names), or every configured server when it names none.

    Raises:
        ConfigurationError: The character names a server that is not configured (a
            character can only choose among the operator's servers).
    """
    if selection is None:
        return list(configured.values())
    names = (
        [n.strip() for n in selection.split(",")]
        if isinstance(selection, str)
        else [str(n).strip() for n in selection]
    )
    unknown = [n for n in names if n and n not in configured]
    if unknown:
        known = ", ".join(sorted(configured)) or "none"
        raise ConfigurationError(
            f"Character {character!r} uses MCP servers {unknown}, which the operator has "
            f"not configured (CARRIER_MCP_CONFIG); configured: {known}."
        )
    return [configured[n] for n in dict.fromkeys(n for n in names if n)]


def action_name(server: str, tool: str) -> str:
    """``server__tool`` made safe for every model backend (``^[a-zA-Z0-9_-]{1,64}$``):
    other characters become ``_``; a longer name is cut and ends with a short hash."""
    raw = f"{server}__{tool}"
    safe = _UNSAFE.sub("_", raw)
    if len(safe) > MAX_NAME:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME - 9]}_{digest}"
    return safe


def assign_action_names(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Action names of ``(server, tool)`` pairs.

    Raises:
        ConfigurationError: Two tools get the same name (names are compared without
            case, as the kernel looks actions up); the message names both.
    """
    names: dict[tuple[str, str], str] = {}
    taken: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        name = action_name(*pair)
        other = taken.get(name.upper())
        if other is not None and other != pair:
            raise ConfigurationError(
                f"Tool {pair[1]!r} of MCP server {pair[0]!r} and tool {other[1]!r} of MCP "
                f"server {other[0]!r} both become the action {name!r}; rename a server in "
                f"CARRIER_MCP_CONFIG, or deny one of the tools."
            )
        taken[name.upper()] = pair
        names[pair] = name
    return names
