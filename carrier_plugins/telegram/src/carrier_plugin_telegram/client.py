"""``TelegramClient``: the service ``carrier start`` runs, one instance per bot token.

An instance drives python-telegram-bot step by step — ``initialize()`` (``getMe``),
``start()``, ``updater.start_polling()``; at the end ``updater.stop()``, ``stop()``,
``shutdown()`` — never ``run_polling()``, which would close the event loop and install
signal handlers. Before polling it takes the bot's poller lock in the store, so two
processes never poll one token (Telegram would answer ``409 Conflict``): the second
waits, reporting who polls, and takes over if that process dies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from carrier.errors import CarrierError
from carrier.outbox import Outbox
from carrier.services import Client, ServiceHealth
from carrier_plugin_telegram.access import PollerLock, describe
from carrier_plugin_telegram.settings import TelegramSettings

if TYPE_CHECKING:
    from telegram.error import TelegramError
    from telegram.ext import Application

    from carrier.runtime import AgentRuntime

__all__ = ["LockLostError", "TelegramClient"]

logger = logging.getLogger("carrier_plugin_telegram")


class LockLostError(CarrierError):
    """Another process took this bot's poller lock (this one stalled past its lease)."""


def settings_of(runtime: AgentRuntime) -> TelegramSettings:
    """The agent's Telegram settings (``CARRIER_TELEGRAM_*``, then its character's)."""
    found: TelegramSettings = runtime.plugin_settings("telegram", TelegramSettings)
    return found


class TelegramClient(Client):
    """Serves agents on Telegram: one instance per bot token, by long polling."""

    name = "telegram"

    def select(self, runtimes: Sequence[AgentRuntime]) -> dict[str, list[AgentRuntime]]:
        """The agents with a token, by a short hash of it."""
        groups: dict[str, list[AgentRuntime]] = {}
        for runtime in runtimes:
            settings = settings_of(runtime)
            if settings.token is not None and settings.token.get_secret_value().strip():
                groups.setdefault(settings.token_key, []).append(runtime)
        return groups

    async def run(self, runtimes: Sequence[AgentRuntime], health: ServiceHealth) -> None:
        runtime = runtimes[0]
        for other in runtimes[1:]:
            logger.error(
                "Telegram: %s and %s are configured with the same bot token; only %s is "
                "served. Give each agent its own bot.",
                runtime.character.name,
                other.character.name,
                runtime.character.name,
            )
        settings = settings_of(runtime)
        application = build_application(settings)
        lock = PollerLock(runtime.store, settings.token_key, ttl_s=settings.lock_ttl_s)
        await application.initialize()  # getMe: fails here on a bad token
        try:
            name = f"@{application.bot.username}"
            await _wait_for_lock(lock, name, health)
            try:
                await self._serve(runtime, application, settings, lock, health, name)
            finally:
                await lock.release()
        finally:
            await application.shutdown()

    async def _serve(
        self,
        runtime: AgentRuntime,
        application: Application,  # type: ignore[type-arg]
        settings: TelegramSettings,
        lock: PollerLock,
        health: ServiceHealth,
        name: str,
    ) -> None:
        from telegram import Update
        from telegram.ext import TypeHandler

        from carrier_plugin_telegram.sending import Sender
        from carrier_plugin_telegram.service import BotService

        sender = Sender(application.bot, Outbox(runtime.store, "telegram", runtime.agent_id))
        service = BotService(runtime, application.bot, settings, sender)
        # what SEND_MESSAGE sends to this bot's rooms (runtime.send_message's event)
        stop_listening = runtime.listen(service.on_event)
        try:
            await sender.flush_pending()
            await service.recover_journal()
            service.start_deliveries()
            application.add_handler(TypeHandler(Update, service.on_update))
            await application.start()
            try:
                updater = application.updater
                assert updater is not None
                if settings.webhook_url:
                    secret = settings.webhook_secret
                    await updater.start_webhook(
                        listen=settings.webhook_listen,
                        port=settings.webhook_port,
                        url_path=settings.webhook_path,
                        webhook_url=settings.webhook_url,
                        secret_token=secret.get_secret_value() if secret else None,
                        allowed_updates=["message"],
                    )
                    how = f"webhook {settings.webhook_url} as {name}"
                else:
                    await updater.start_polling(
                        timeout=dt.timedelta(seconds=settings.poll_timeout_s),
                        allowed_updates=["message"],
                        error_callback=_polling_error(health, name),
                    )
                    how = f"polling as {name}"
                health.ready(how)
                logger.info("Telegram: %s serves by %s", runtime.character.name, how)
                try:
                    await _keep(lock)
                finally:
                    await updater.stop()
                    await service.drain(settings.drain_timeout_s)
            finally:
                await application.stop()
        finally:
            stop_listening()


def build_application(settings: TelegramSettings) -> Application:  # type: ignore[type-arg]
    """A PTB application for the settings' token and Bot API server (nothing started)."""
    from telegram.ext import Application

    from carrier_plugin_telegram.sending import Request

    if settings.token is None:
        raise CarrierError("The Telegram client needs CARRIER_TELEGRAM_TOKEN.")
    timeout = settings.poll_timeout_s + 10
    builder = (
        Application.builder()
        .token(settings.token.get_secret_value())
        .base_url(f"{settings.base_url}/bot")
        .base_file_url(f"{settings.base_url}/file/bot")
        .request(Request(connection_pool_size=64))
        .get_updates_request(Request(read_timeout=timeout))
    )
    if settings.rate_limit:
        from telegram.ext import AIORateLimiter

        builder = builder.rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.rate_limit_per_s,
                overall_time_period=1,
                group_max_rate=settings.rate_limit_group_per_min,
                group_time_period=60,
                max_retries=0,  # the sender's own retries honour retry_after
            )
        )
    return builder.build()


async def _wait_for_lock(lock: PollerLock, name: str, health: ServiceHealth) -> None:
    """Take the poller lock, or wait (reporting the holder) until it is free."""
    reported = None
    while not await lock.acquire():
        holder = describe(await lock.holder())
        if holder != reported:
            reported = holder
            detail = f"standby: {holder} polls {name}; this process takes over if it stops"
            health.report(detail)
            logger.warning("Telegram: %s", detail)
        await asyncio.sleep(lock.ttl_s / 3)


async def _keep(lock: PollerLock) -> None:
    """Renew the lock every third of its lease until cancelled; raise if it is lost."""
    while True:
        await asyncio.sleep(lock.ttl_s / 3)
        if not await lock.renew():
            raise LockLostError(
                f"Another process ({describe(await lock.holder())}) took the Telegram poller "
                f"lock; this one stops polling."
            )


def _polling_error(health: ServiceHealth, name: str) -> Callable[[TelegramError], None]:
    def report(error: TelegramError) -> None:
        from telegram.error import Conflict

        if isinstance(error, Conflict):
            detail = (
                f"409 Conflict: a program outside Carrier polls {name} (or a webhook is "
                f"set); stop it. Telegram said: {error}"
            )
        else:
            detail = f"polling {name} failed, retrying: {error}"
        health.report(detail)
        logger.warning("Telegram: %s", detail)

    return report
