"""Sending to Telegram: the outbox, per-chat order, flood waits, retries, typing.

Every chunk is recorded in the kernel's :class:`~carrier.outbox.Outbox` before it is sent
and marked sent after, so a crash in between sends it again at the next start (the one
accepted at-least-once window: ``sendMessage`` has no idempotency key). Chunks of one
chat go out one at a time, in order; a ``429`` waits the ``retry_after`` Telegram asked
for (that chat only), and network errors are retried with backoff (tenacity).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from telegram import ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.request import HTTPXRequest
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.request import RequestData

    from carrier.outbox import Outbox, OutboxItem
    from carrier_plugin_telegram.convert import ChatAddress

__all__ = ["FloodWaitError", "Request", "Sender", "typing"]

logger = logging.getLogger("carrier_plugin_telegram")


class FloodWaitError(TelegramError):
    """Telegram's 429: wait ``retry_after`` seconds before the next call.

    python-telegram-bot's own ``RetryAfter`` warns about a coming type change each time
    it is built, so :class:`Request` raises this instead.
    """

    def __init__(self, retry_after: float, description: str = "") -> None:
        super().__init__(description or f"Flood control exceeded; retry in {retry_after} s")
        self.retry_after = retry_after


class Request(HTTPXRequest):
    """PTB's httpx transport, raising :class:`FloodWaitError` for a 429 with ``retry_after``."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url,
            method,
            request_data=request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        if code == 429:
            try:
                body = json.loads(payload)
                retry_after = float(body["parameters"]["retry_after"])
            except (ValueError, KeyError, TypeError):
                return code, payload
            raise FloodWaitError(retry_after, str(body.get("description", "")))
        return code, payload


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, FloodWaitError) or (
        isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)
    )


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, FloodWaitError):
        return error.retry_after
    return float(min(0.5 * 2 ** (state.attempt_number - 1), 10.0))


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "Telegram send failed (%s); trying again in %.1f s",
        error,
        state.next_action.sleep if state.next_action else 0.0,
    )


class Sender:
    """Delivers outbox items, one chat at a time and in order.

    Args:
        bot: The initialized PTB bot.
        outbox: The agent's Telegram outbox.
        attempts: Tries per chunk before it is left pending for the next start.
    """

    def __init__(self, bot: Bot, outbox: Outbox, *, attempts: int = 8) -> None:
        self._bot = bot
        self._outbox = outbox
        self._attempts = attempts
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def outbox(self) -> Outbox:
        """Where every chunk is recorded before it is sent."""
        return self._outbox

    async def send(
        self, chat: str, bodies: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> None:
        """Record ``bodies`` for ``chat`` in the outbox (``ref``: the message they
        answer), then deliver them."""
        if bodies:
            await self.deliver(await self.record(chat, bodies, ref=ref))

    async def record(
        self, chat: str, bodies: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> list[OutboxItem]:
        """Record ``bodies`` for ``chat`` in the outbox (deliver them with :meth:`deliver`)."""
        return await self._outbox.put(chat, bodies, ref=ref)

    async def flush_pending(self) -> int:
        """Send what an earlier run recorded but did not deliver, in order."""
        items = await self._outbox.pending()
        if items:
            logger.warning("Telegram: sending %d message(s) a previous run left unsent", len(items))
            # an answer whose put() died before its note keeps counting as recorded
            for ref in dict.fromkeys(item.ref for item in items if item.ref is not None):
                await self._outbox.remember(ref)
            await self.deliver(items)
        return len(items)

    async def deliver(self, items: Sequence[OutboxItem]) -> None:
        """Send ``items`` (each chat's in order); each is marked sent once accepted.
        One that keeps failing stays in the outbox, and so do the rest of its chat."""
        chats: dict[str, list[OutboxItem]] = {}
        for item in items:
            chats.setdefault(item.chat, []).append(item)
        await asyncio.gather(*(self._deliver_chat(chat, group) for chat, group in chats.items()))

    async def _deliver_chat(self, chat: str, items: list[OutboxItem]) -> None:
        lock = self._locks.setdefault(chat, asyncio.Lock())
        async with lock:
            for item in items:
                try:
                    await self._send_one(item.body)
                except TelegramError as exc:
                    if _transient(exc):
                        logger.error("Telegram: giving up on chat %s for now: %s", chat, exc)
                        return  # stays pending; sent again at the next start
                    logger.error("Telegram refused a message to chat %s: %s (dropped)", chat, exc)
                await self._outbox.sent(item)

    async def _send_one(self, body: dict[str, Any]) -> None:
        reply_to = body.get("reply_to")
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=_wait,
            stop=stop_after_attempt(self._attempts),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._bot.send_message(
                    chat_id=int(body["chat_id"]),
                    text=str(body["text"]),
                    message_thread_id=body.get("thread_id"),
                    reply_parameters=(
                        ReplyParameters(message_id=int(reply_to), allow_sending_without_reply=True)
                        if reply_to
                        else None
                    ),
                )


def bodies_for(
    address: ChatAddress, pieces: Sequence[str], *, reply_to: int | None
) -> list[dict[str, Any]]:
    """Outbox bodies for ``pieces`` sent to ``address``; the first replies to ``reply_to``."""
    return [
        {
            "chat_id": address.chat_id,
            "thread_id": address.thread_id,
            "text": piece,
            "reply_to": reply_to if index == 0 else None,
        }
        for index, piece in enumerate(pieces)
    ]


@contextlib.asynccontextmanager
async def typing(bot: Bot, address: ChatAddress, *, interval_s: float) -> AsyncIterator[None]:
    """Show "typing…" in the chat (renewed every ``interval_s``) until the block exits,
    however it exits."""

    async def show() -> None:
        try:
            await bot.send_chat_action(
                address.chat_id, ChatAction.TYPING, message_thread_id=address.thread_id
            )
        except TelegramError as exc:
            logger.debug("Typing indicator failed: %s", exc)

    async def renew() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await show()

    loop = asyncio.get_running_loop()
    first = loop.create_task(show())  # not awaited: the turn starts at once
    task = loop.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # a request already on its way is finished, not cut off; none follows it
        with contextlib.suppress(Exception):
            await asyncio.wait_for(first, timeout=interval_s)
