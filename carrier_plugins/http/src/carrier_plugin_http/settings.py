"""``HttpSettings``: the ``http`` settings namespace (``CARRIER_HTTP_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["HttpSettings"]


class HttpSettings(BaseSettings):
    """Settings of ``carrier serve`` and the HTTP app.

    Attributes:
        host: Address to bind; anything but loopback needs ``token``.
        port: TCP port (ElizaOS's direct client uses 3000).
        token: Bearer token every API request must carry (``CARRIER_HTTP_TOKEN``).
        user_tokens: Per-user bearer tokens, ``{"token": "user id"}``; a request made
            with one acts as that user only, whatever ``userId`` it sends.
        max_body_bytes: Largest request body outside file uploads.
        max_upload_bytes: Largest multipart body (a message with a file).
        rate_limit_per_minute: Requests per client and minute; 0 turns the limit off.
        rate_limit_burst: Requests a client may send at once before being limited.
        cors_origins: Origins allowed by CORS; empty (the default) turns CORS off.
        upload_dir: Where uploaded files are stored (default: the data dir's ``uploads``).
        attachment_text_bytes: Text files up to this size are also stored inline in
            the attachment, so the model can read them.
    """

    model_config = SettingsConfigDict(env_prefix="CARRIER_HTTP_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    token: SecretStr | None = None
    user_tokens: dict[str, str] = Field(default_factory=dict)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=10_485_760, gt=0)
    rate_limit_per_minute: int = Field(default=120, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    upload_dir: Path | None = None
    attachment_text_bytes: int = Field(default=65_536, ge=0)
