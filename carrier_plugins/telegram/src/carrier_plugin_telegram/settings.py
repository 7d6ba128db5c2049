"""``TelegramSettings``: the ``telegram`` settings namespace (``CARRIER_TELEGRAM_*``).

Each agent may override any of them in its character (``settings`` or ``secrets``
named ``TELEGRAM_<FIELD>``: ``{"secrets": {"TELEGRAM_TOKEN": "..."}}``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["TelegramSettings"]

IdList = Annotated[list[int], NoDecode]


class TelegramSettings(BaseSettings):
    """Settings of the Telegram client.

    Attributes:
        token: The bot token from @BotFather (``CARRIER_TELEGRAM_TOKEN``); without one the
            client does not run for the agent.
        base_url: The Bot API server: Telegram's, a self-hosted ``telegram-bot-api``, or
            a test's fake (``carrier_plugin_telegram.testing.FakeTelegram.url``).
        owners: Telegram user ids of the agent's owners: the OWNER role everywhere, and
            they may always write to the bot directly. Comma-separated or a JSON list.
        group_policy: In groups, answer only when addressed (``mention_only``: an
            @mention, a reply to the bot, a command or the agent's name), or every
            message (``all``). Unaddressed messages are stored either way.
        allowed_chats: Group chat ids the bot works in; empty: any group it is added to.
        dm_policy: Who may talk to the bot directly: anyone (``open``), the users in
            ``allowed_users`` (``allowlist``), or those plus users an owner approved with
            ``carrier telegram approve CODE`` (``pairing``, the default).
        allowed_users: Telegram user ids allowed to write directly (``allowlist``, ``pairing``).
        attachment_text_bytes: Text documents up to this size reach the model inline.
        poll_timeout_s: How long one ``getUpdates`` long poll waits.
        typing_interval_s: How often the typing indicator is renewed while the agent works.
        admin_cache_s: How long a group's administrator list is trusted before it is
            fetched again.
        lock_ttl_s: The poller lock's lease: another process takes over this long after
            the polling process died.
        drain_timeout_s: At shutdown, how long turns in flight may take to finish.
        delivery_poll_s: How often the store is checked for messages the agent sent to
            this bot's rooms from another process (a ``carrier worker`` running
            SEND_MESSAGE); those sent in this process go out at once.
        webhook_url: Receive updates by webhook instead of long polling: the public
            HTTPS URL Telegram posts to (your reverse proxy), registered with
            ``setWebhook`` at start. The client listens on ``webhook_listen`` and
            ``webhook_port`` at the URL's path.
        webhook_listen: The address the webhook server binds (behind a proxy: 127.0.0.1).
        webhook_port: Its port.
        webhook_secret: Telegram sends it in ``X-Telegram-Bot-Api-Secret-Token`` with each
            update; other requests are refused (403). Set one whenever you use a webhook.
        rate_limit: Throttle sends to Telegram's published limits before Telegram
            enforces them (python-telegram-bot's ``AIORateLimiter``). Off by default: a
            429 with ``retry_after`` is honoured either way.
        rate_limit_per_s: With ``rate_limit``, messages a second over all chats.
        rate_limit_group_per_min: With ``rate_limit``, messages a minute into one group.
    """

    model_config = SettingsConfigDict(
        env_prefix="CARRIER_TELEGRAM_", env_file=".env", extra="ignore"
    )

    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org"
    owners: IdList = Field(default_factory=list)
    group_policy: Literal["mention_only", "all"] = "mention_only"
    allowed_chats: IdList = Field(default_factory=list)
    dm_policy: Literal["open", "allowlist", "pairing"] = "pairing"
    allowed_users: IdList = Field(default_factory=list)
    attachment_text_bytes: int = Field(default=65_536, ge=0)
    poll_timeout_s: float = Field(default=10.0, ge=0)
    typing_interval_s: float = Field(default=4.0, gt=0)
    admin_cache_s: float = Field(default=60.0, ge=0)
    lock_ttl_s: float = Field(default=30.0, gt=0)
    drain_timeout_s: float = Field(default=5.0, ge=0)
    delivery_poll_s: float = Field(default=1.0, gt=0)
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    rate_limit: bool = False
    rate_limit_per_s: float = Field(default=30.0, gt=0)
    rate_limit_group_per_min: float = Field(default=20.0, gt=0)

    @field_validator("owners", "allowed_chats", "allowed_users", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        """Accept ``"1,2"``, ``"[1, 2]"``, a single id or a list."""
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"must be the URL Telegram posts updates to, not {value!r}")
        return value.strip()

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's rule for secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -
        secret = value.get_secret_value() if value is not None else "-"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("may hold only 1-256 letters, digits, '_' and '-' (Telegram's rule)")
        return value

    @property
    def webhook_path(self) -> str:
        """The path of ``webhook_url`` (where the local webhook server listens)."""
        from urllib.parse import urlsplit

        return urlsplit(self.webhook_url or "").path.lstrip("/")

    @property
    def bot_id(self) -> int | None:
        """The bot's id: the part of the token before the colon (public)."""
        if self.token is None:
            return None
        head = self.token.get_secret_value().split(":", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def token_key(self) -> str:
        """A short hash naming the token in logs, health and locks (never the token)."""
        secret = self.token.get_secret_value() if self.token else ""
        return hashlib.sha256(secret.encode()).hexdigest()[:12]
