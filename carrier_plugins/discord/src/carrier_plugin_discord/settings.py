"""``DiscordSettings``: the ``discord`` settings namespace (``CARRIER_DISCORD_*``).

Each agent may override any of them in its character (``settings`` or ``secrets``
named ``DISCORD_<FIELD>``: ``{"secrets": {"DISCORD_TOKEN": "..."}}``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DiscordSettings"]

IdList = Annotated[list[int], NoDecode]


class DiscordSettings(BaseSettings):
    """Settings of the Discord client.

    Attributes:
        token: The bot token from the Developer Portal (``CARRIER_DISCORD_TOKEN``);
            without one the client does not run for the agent.
        owners: Discord user ids of the agent's owners: the OWNER role everywhere, and
            they may always write to the bot directly. Comma-separated or a JSON list.
        admin_roles: Role ids whose members are ADMIN in the guild the role belongs to
            (members with the Administrator permission always are).
        guild_policy: In guild channels, answer only when addressed (``mention_only``:
            an @mention of the bot, a reply to it, or the agent's name), or every
            message (``all``). Unaddressed messages are stored either way.
        allowed_channels: Channel ids (a thread counts as its parent channel) the bot
            works in; empty: every channel it can read.
        listen_channels: Channel ids where the bot reads and remembers but never answers.
        dm_policy: Who may write to the bot directly: anyone (``open``), the users in
            ``allowed_users`` (``allowlist``), or those plus users an owner approved with
            ``carrier discord approve CODE`` (``pairing``, the default).
        allowed_users: Discord user ids allowed to write directly.
        attachment_text_bytes: Text attachments up to this size reach the model inline.
        slash_commands: Register ``/ask`` and ``/forget`` in each guild at connect.
        typing_interval_s: How often the typing indicator is renewed while the agent works.
        drain_timeout_s: At shutdown, how long turns in flight may take to finish.
        reconnect_timeout_s: After the gateway connection drops, how long discord.py may
            take to resume or reconnect before the client is restarted from scratch (it
            can stall after a fatal close code).
        delivery_poll_s: How often messages the agent sent from another process (a
            ``carrier worker`` running SEND_MESSAGE) are looked for; in this process
            they go out at once.
        api_base: Discord's REST API root; change it only to point at a test's fake
            (``carrier_plugin_discord.testing.FakeDiscord``). It is set process-wide.
        gateway_url: The gateway's address; as ``api_base``, for tests only.
    """

    model_config = SettingsConfigDict(
        env_prefix="CARRIER_DISCORD_", env_file=".env", extra="ignore"
    )

    token: SecretStr | None = None
    owners: IdList = Field(default_factory=list)
    admin_roles: IdList = Field(default_factory=list)
    guild_policy: Literal["mention_only", "all"] = "mention_only"
    allowed_channels: IdList = Field(default_factory=list)
    listen_channels: IdList = Field(default_factory=list)
    dm_policy: Literal["open", "allowlist", "pairing"] = "pairing"
    allowed_users: IdList = Field(default_factory=list)
    attachment_text_bytes: int = Field(default=65_536, ge=0)
    slash_commands: bool = True
    typing_interval_s: float = Field(default=8.0, gt=0)
    drain_timeout_s: float = Field(default=5.0, ge=0)
    reconnect_timeout_s: float = Field(default=60.0, gt=0)
    delivery_poll_s: float = Field(default=2.0, gt=0)
    api_base: str | None = None
    gateway_url: str | None = None

    @field_validator(
        "owners",
        "admin_roles",
        "allowed_channels",
        "listen_channels",
        "allowed_users",
        mode="before",
    )
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

    @property
    def token_key(self) -> str:
        """A short hash naming the token in logs and health (never the token)."""
        secret = self.token.get_secret_value() if self.token else ""
        return hashlib.sha256(secret.encode()).hexdigest()[:12]
