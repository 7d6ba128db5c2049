"""``HttpSettings``: the ``http`` settings namespace (``CARRIER_HTTP_*``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier.types import Role

__all__ = ["HttpSettings", "UserToken"]

_USER_ID = re.compile(r"[A-Za-z0-9._:@\-]{1,200}")
_ROLES = ", ".join(repr(role.value) for role in Role)


class UserToken(BaseModel):
    """One per-user bearer token: the user it speaks for and that user's role.

    The token is a ``SecretStr``: it never shows in a repr, a log or an error.
    """

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    user: str
    role: Role = Role.MEMBER


class HttpSettings(BaseSettings):
    """Settings of ``carrier serve`` and the HTTP app.

    Attributes:
        host: Address to bind; anything but loopback needs ``token`` or ``user_tokens``.
        port: TCP port (ElizaOS's direct client uses 3000).
        token: Bearer token every API request must carry (``CARRIER_HTTP_TOKEN``);
            requests made with it act as members.
        user_tokens: Per-user bearer tokens. The setting is a JSON object, either
            ``{"token": {"user": "alice", "role": "admin"}}`` or ``{"token": "alice"}``
            (a member); a request made with one acts as that user only, whatever
            ``userId`` it sends, with that role (over HTTP only).
        allowed_hosts: Host names the server answers to besides ``localhost``,
            ``127.0.0.1``, ``[::1]`` and ``host``. Checked when no token is set, or
            whenever this list is not empty (other ``Host`` headers get 400).
        max_body_bytes: Largest request body outside file uploads.
        max_upload_bytes: Largest multipart body (a message with a file).
        rate_limit_per_minute: Requests per client and minute; 0 turns the limit off.
        rate_limit_burst: Requests a client may send at once before being limited.
        cors_origins: Origins allowed by CORS; empty (the default) turns CORS off.
        upload_dir: Where uploaded files are stored (default: the data dir's ``uploads``).
        attachment_text_bytes: Text files up to this size are also stored inline in
            the attachment, so the model can read them.
        start: Whether ``carrier start`` also serves the HTTP API (as the ``http``
            client, beside the chat platforms); ``carrier serve`` always does.
    """

    model_config = SettingsConfigDict(env_prefix="CARRIER_HTTP_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    token: SecretStr | None = None
    user_tokens: list[UserToken] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=10_485_760, gt=0)
    rate_limit_per_minute: int = Field(default=120, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    upload_dir: Path | None = None
    attachment_text_bytes: int = Field(default=65_536, ge=0)
    start: bool = False

    @property
    def tokenless(self) -> bool:
        """Whether no token protects the API (then only loopback may be bound)."""
        return self.token is None and not self.user_tokens

    @field_validator("user_tokens", mode="before")
    @classmethod
    def _read_user_tokens(cls, value: Any) -> Any:
        """Accept the JSON object form; every message names the user, never the token."""
        if not isinstance(value, Mapping):
            return value  # already a list of UserToken (or pydantic says what is wrong)
        found = []
        for token, grant in value.items():
            if not isinstance(token, str) or not token.strip():
                raise ValueError("every token must be a non-empty string")
            found.append(_user_token(token, grant))
        return found

    @field_validator("allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.strip().lower().rstrip(".") for host in value if host.strip()]


def _user_token(token: str, grant: Any) -> UserToken:
    """A ``UserToken`` from ``"alice"`` or ``{"user": "alice", "role": "admin"}``."""
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
