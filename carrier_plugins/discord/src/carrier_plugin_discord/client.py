"""``DiscordClient``: the service ``carrier start`` runs, one instance per bot token.

An instance logs in (``GET /users/@me``, the application), connects to the gateway and
lets discord.py keep the connection: heartbeats, reconnects, RESUME after a drop (the
events missed meanwhile are replayed, and the kernel recognises those it has seen). At
shutdown it stops taking events, lets the turns in flight finish within
``drain_timeout_s``, then closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from carrier.errors import CarrierError, ConfigurationError
from carrier.outbox import Outbox
from carrier.services import Client, ServiceHealth
from carrier_plugin_discord.settings import DiscordSettings

if TYPE_CHECKING:
    import discord

    from carrier.runtime import AgentRuntime
    from carrier_plugin_discord.service import BotService

__all__ = ["DiscordClient", "build_bot", "intents"]

logger = logging.getLogger("carrier_plugin_discord")


def settings_of(runtime: AgentRuntime) -> DiscordSettings:
    """The agent's Discord settings (``CARRIER_DISCORD_*``, then its character's)."""
    found: DiscordSettings = runtime.plugin_settings("discord", DiscordSettings)
    return found


def intents() -> discord.Intents:
    """What the bot asks the gateway for. ``message_content`` is privileged: enable it
    for the bot in the Developer Portal, or guild messages arrive without text."""
    from carrier_plugin_discord.sdk import discord

    return discord.Intents(
        guilds=True,
        guild_messages=True,
        dm_messages=True,
        message_content=True,
        guild_reactions=True,
        dm_reactions=True,
    )


def point_at(settings: DiscordSettings) -> None:
    """Send discord.py's REST calls and gateway connection where the settings say (a
    test's fake); discord.py reads both from class attributes, so this is process-wide."""
    import yarl

    from carrier_plugin_discord.sdk import discord

    if settings.api_base:
        discord.http.Route.BASE = settings.api_base.rstrip("/")
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def build_bot(events: dict[str, Any]) -> discord.Client:
    """A discord.py client calling ``events[name](...)`` for ``ready``, ``message``,
    ``raw_reaction_add`` and ``interaction`` (missing names are ignored)."""
    from carrier_plugin_discord.sdk import discord

    class CarrierBot(discord.Client):
        async def on_ready(self) -> None:
            await _call(events, "ready")

        async def on_message(self, message: discord.Message) -> None:
            await _call(events, "message", message)

        async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
            await _call(events, "raw_reaction_add", payload)

        async def on_interaction(self, interaction: discord.Interaction) -> None:
            await _call(events, "interaction", interaction)

        async def on_guild_join(self, guild: discord.Guild) -> None:
            await _call(events, "guild_join", guild)

        async def on_disconnect(self) -> None:
            await _call(events, "disconnect")

        async def on_resumed(self) -> None:
            await _call(events, "resumed")

    from carrier_plugin_discord.sending import ALLOWED_MENTIONS

    return CarrierBot(
        intents=intents(),
        allowed_mentions=ALLOWED_MENTIONS,
        guild_ready_timeout=0,
        enable_debug_events=False,
    )


async def _call(events: dict[str, Any], name: str, *args: Any) -> None:
    handler = events.get(name)
    if handler is not None:
        result = handler(*args)
        if asyncio.iscoroutine(result):
            await result


class DiscordClient(Client):
    """Serves agents on Discord: one instance per bot token, over the gateway."""

    name = "discord"

    def select(self, runtimes: Sequence[AgentRuntime]) -> dict[str, list[AgentRuntime]]:
        """The agents with a token, by a short hash of it."""
        groups: dict[str, list[AgentRuntime]] = {}
        for runtime in runtimes:
            settings = settings_of(runtime)
            if settings.token is not None and settings.token.get_secret_value().strip():
                groups.setdefault(settings.token_key, []).append(runtime)
        return groups

    async def run(self, runtimes: Sequence[AgentRuntime], health: ServiceHealth) -> None:
        from carrier_plugin_discord.sdk import discord

        runtime = runtimes[0]
        for other in runtimes[1:]:
            logger.error(
                "Discord: %s and %s are configured with the same bot token; only %s is "
                "served. Give each agent its own bot.",
                runtime.character.name,
                other.character.name,
                runtime.character.name,
            )
        settings = settings_of(runtime)
        if settings.token is None:
            raise ConfigurationError("The Discord client needs CARRIER_DISCORD_TOKEN.")
        point_at(settings)
        events: dict[str, Any] = {}
        bot = build_bot(events)
        try:
            try:
                await bot.login(settings.token.get_secret_value())
            except discord.LoginFailure as exc:
                raise ConfigurationError(
                    "Discord refused the bot token (401); check CARRIER_DISCORD_TOKEN."
                ) from exc
            except discord.HTTPException as exc:
                raise CarrierError(f"Logging in to Discord failed: {exc}") from exc
            await self._serve(runtime, bot, settings, health, events)
        finally:
            with contextlib.suppress(Exception):
                # discord.py's close can stall on a gateway that is already gone
                await asyncio.wait_for(bot.close(), timeout=10)

    async def _serve(
        self,
        runtime: AgentRuntime,
        bot: discord.Client,
        settings: DiscordSettings,
        health: ServiceHealth,
        events: dict[str, Any],
    ) -> None:
        from carrier_plugin_discord.interactions import handle_interaction, register_commands
        from carrier_plugin_discord.sending import Sender
        from carrier_plugin_discord.service import BotService

        sender = Sender(bot.http, Outbox(runtime.store, "discord", runtime.agent_id))
        service = BotService(runtime, bot, settings, sender)
        ready = asyncio.Event()
        name = f"@{bot.user}"

        dropped: list[float] = []  # when the gateway dropped, until it is back

        async def on_ready() -> None:
            dropped.clear()
            if settings.slash_commands:
                service.spawn(register_commands(service, [g.id for g in bot.guilds]))
            ready.set()

        async def on_disconnect() -> None:
            if not dropped:
                dropped.append(time.monotonic())

        async def on_resumed() -> None:
            dropped.clear()

        async def on_guild_join(guild: discord.Guild) -> None:
            if settings.slash_commands:
                service.spawn(register_commands(service, [guild.id]))

        events.update(
            ready=on_ready,
            message=service.on_message,
            raw_reaction_add=service.on_reaction,
            interaction=lambda i: _interaction(service, i, handle_interaction),
            guild_join=on_guild_join,
            disconnect=on_disconnect,
            resumed=on_resumed,
        )
        stop_listening = runtime.listen(service.on_event)
        service.start_deliveries()
        connection = asyncio.get_running_loop().create_task(_connect(bot))
        try:
            await sender.flush_pending()
            await service.recover_journal()
            waiter = asyncio.get_running_loop().create_task(ready.wait())
            done, _ = await asyncio.wait({connection, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if connection in done:
                waiter.cancel()
                connection.result()  # raises what ended it
            else:
                health.ready(f"connected as {name}")
                logger.info("Discord: %s connected as %s", runtime.character.name, name)
                await _watch(connection, dropped, settings.reconnect_timeout_s)
            raise CarrierError("The Discord gateway connection ended.")
        finally:
            logger.info("Discord: %s stops serving as %s; draining", runtime.character.name, name)
            stop_listening()
            await service.drain(settings.drain_timeout_s)
            logger.info("Discord: %s drained", runtime.character.name)
            connection.cancel()
            # bounded: a gateway loop that ignores its cancellation must not keep the
            # supervisor from starting the client afresh
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(connection, timeout=10)


async def _watch(connection: asyncio.Task[None], dropped: list[float], limit_s: float) -> None:
    """Wait for the gateway loop to end; raise if the connection stays dropped (no
    resume, no new READY) for ``limit_s``, so the supervisor starts the client afresh."""
    while True:
        done, _ = await asyncio.wait({connection}, timeout=min(1.0, limit_s / 4))
        if done:
            connection.result()
            return
        if dropped and time.monotonic() - dropped[0] > limit_s:
            raise CarrierError(
                f"The Discord gateway connection dropped and did not come back within "
                f"{limit_s:g} s; restarting the client."
            )


async def _connect(bot: discord.Client) -> None:
    """discord.py's gateway loop (it reconnects and resumes by itself); what ends it
    for good, as a Carrier error."""
    from carrier_plugin_discord.sdk import discord

    try:
        await bot.connect(reconnect=True)
    except discord.PrivilegedIntentsRequired as exc:
        raise ConfigurationError(
            "Discord refused the connection: the bot asks for the Message Content intent, "
            "which is privileged. Enable it for the bot in the Developer Portal (Bot → "
            "Privileged Gateway Intents)."
        ) from exc
    except discord.ConnectionClosed as exc:
        raise CarrierError(f"Discord closed the gateway connection (code {exc.code}).") from exc
    except discord.DiscordException as exc:
        raise CarrierError(f"The Discord gateway connection failed: {exc}") from exc


async def _interaction(service: BotService, interaction: Any, handle: Any) -> None:
    if service.closing:
        return
    service.spawn(handle(service, interaction))
