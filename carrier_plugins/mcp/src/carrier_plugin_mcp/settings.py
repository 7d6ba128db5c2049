"""``McpSettings``: the ``mcp`` settings namespace (``CARRIER_MCP_*``), the operator's only.

The MCP servers are read from here, never from a character: a character file may only name
which configured servers it uses (its ``MCP_SERVERS`` setting), so a shared character file
can never start a command. The plugin reads this class with the host's settings
(``host.settings.get("mcp")``), which a character cannot override.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.types import Role

__all__ = ["McpSettings", "UserToken"]

_USER_ID = re.compile(r"[A-Za-z0-9._:@\-]{1,200}")
_ROLES = ", ".join(repr(role.value) for role in Role)


class UserToken(BaseModel):
    """One bearer token of ``carrier mcp serve --http``: the user it speaks for and that
    user's role (the HTTP API plugin's token shape). Never shown in a repr or a log."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    user: str
    role: Role = Role.MEMBER


class McpSettings(BaseSettings):
    """The MCP plugin's settings.

    Attributes:
        config: The servers, in the ``mcpServers`` JSON shape that Claude Desktop uses:
            a path to a JSON file, or the JSON itself (``CARRIER_MCP_CONFIG``).
        connect_timeout_s: Default seconds to start and initialize a server.
        call_timeout_s: Default seconds a tool call may take.
        output_max_chars: Default budget of a tool's output in the prompt; longer output
            is cut.
        backoff_initial_s: First wait before a failed server is started again (doubles
            on each further failure).
        backoff_max_s: Longest wait between two tries.
        ping_interval_s: How often a quiet connection is checked (a dead server is
            found before the next call); 0 turns it off.
        user: The user ``carrier mcp serve`` speaks for over stdio (the local operator).
        role: That user's role over stdio.
        user_tokens: Bearer tokens of ``carrier mcp serve --http``, a JSON object
            ``{"token": {"user": "alice", "role": "admin"}}`` or ``{"token": "alice"}``.
        host: Address ``carrier mcp serve --http`` binds (loopback only).
        port: Its TCP port.
    """

    model_config = SettingsConfigDict(env_prefix="CARRIER_MCP_", env_file=".env", extra="ignore")

    config: str | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    call_timeout_s: float = Field(default=60.0, gt=0)
    output_max_chars: int = Field(default=4000, ge=100)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    ping_interval_s: float = Field(default=30.0, ge=0)
    user: str = "operator"
    role: Role = Role.OWNER
    user_tokens: list[UserToken] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)

    @field_validator("user_tokens", mode="before")
    @classmethod
    def _read_user_tokens(cls, value: Any) -> Any:
        """Accept the JSON object form; every message names the user, never the token."""
        if not isinstance(value, Mapping):
            return value
        found = []
        for token, grant in value.items():
            if not isinstance(token, str) or not token.strip():
                raise ValueError("every token must be a non-empty string")
            found.append(_user_token(token, grant))
        return found


def _user_token(token: str, grant: Any) -> UserToken:
    if isinstance(grant, str):
        grant = {"user": grant}
    if not isinstance(grant, Mapping):
        raise ValueError(
            'each token must map to a user id or to {"user": "...", "role": "..."} '
            f"(found a {type(grant).__name__})"
        )
    unknown = sorted(set(grant) - {"user", "role"})
    if unknown:
        raise ValueError(f"unknown keys {unknown} in a token's entry; use 'user' and 'role'")
    user = grant.get("user")
    if not isinstance(user, str) or not _USER_ID.fullmatch(user) or user in (".", ".."):
        raise ValueError(
            f"the user id {user!r} is not valid; use 1 to 200 letters, digits or . _ : @ -"
        )
    role = grant.get("role", Role.MEMBER.value)
    if not isinstance(role, str) or role.lower() not in {r.value for r in Role}:
        raise ValueError(f"unknown role {role!r} for user {user!r}; valid roles are {_ROLES}")
    return UserToken(token=SecretStr(token), user=user, role=Role(role.lower()))
