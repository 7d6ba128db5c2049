"""Sending to Discord: the outbox, per-channel order, typing.

Every chunk is recorded in the kernel's :class:`~carrier.outbox.Outbox` before it is sent
and marked sent after, so a crash in between sends it again at the next start. Chunks
of one channel go out one at a time, in order, through discord.py's HTTP client, which
keeps Discord's per-route buckets and sleeps for the ``retry_after`` of a 429 itself.
A server error or a lost connection leaves the chunk (and the rest of its channel)
pending for the next start; a refusal (403, 404, 400) drops it.

An answer to ``/ask`` is a chunk too, delivered as a follow-up of the interaction (the
webhook ``/webhooks/{application}/{token}``) instead of a channel message. Its token
lives 15 minutes: a follow-up still pending after that is dropped with a warning, never
retried. A chunk that carries ``approval_id`` (the notice that an action waits for
approval) is sent with Approve and Reject buttons (:mod:`.approval_buttons`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from carrier_plugin_discord.approval_buttons import approval_view
from carrier_plugin_discord.sdk import discord

if TYPE_CHECKING:
    from carrier.outbox import Outbox, OutboxItem

__all__ = [
    "INTERACTION_TOKEN_TTL_S",
    "Sender",
    "bodies_for",
    "expired",
    "followup_target",
    "typing",
]

logger = logging.getLogger("carrier_plugin_discord")

#: Model output never pings anyone but the author it answers.
ALLOWED_MENTIONS = discord.AllowedMentions(
    everyone=False, users=False, roles=False, replied_user=True
)

#: How long Discord accepts follow-ups with an interaction's token (15 minutes).
INTERACTION_TOKEN_TTL_S = 15 * 60.0


class _TokenExpiredError(Exception):
    """A follow-up's interaction token is past its 15 minutes."""


def followup_target(interaction: discord.Interaction, *, ephemeral: bool) -> dict[str, Any]:
    """Where the follow-ups answering ``interaction`` go (part of their outbox bodies):
    the application's webhook with the interaction's token, until the token expires
    (:data:`INTERACTION_TOKEN_TTL_S` after now, when the interaction is handled)."""
    return {
        "interaction_id": interaction.id,
        "application_id": interaction.application_id,
        "token": interaction.token,
        "ephemeral": ephemeral,
        "expires_at": time.time() + INTERACTION_TOKEN_TTL_S,
    }


def expired(target: dict[str, Any]) -> bool:
    """Whether a follow-up target's token is past its lifetime."""
    return time.time() >= float(target["expires_at"])


class Sender:
    """Delivers outbox items, one channel at a time and in order.

    Args:
        http: The logged-in client's ``discord.http.HTTPClient``.
        outbox: The agent's Discord outbox.
    """

    def __init__(self, http: Any, outbox: Outbox) -> None:
        self._http = http
        self.outbox = outbox
        self._locks: dict[str, asyncio.Lock] = {}

    async def send(
        self, channel: str, bodies: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> None:
        """Record ``bodies`` for ``channel`` in the outbox (``ref``: what they answer),
        then deliver them."""
        if bodies:
            await self.deliver(await self.outbox.put(channel, bodies, ref=ref))

    async def record(
        self, channel: str, bodies: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> list[OutboxItem]:
        """Record ``bodies`` for ``channel`` (deliver them with :meth:`deliver`)."""
        return await self.outbox.put(channel, bodies, ref=ref)

    async def flush_pending(self) -> int:
        """Send what an earlier run recorded but did not deliver, in order."""
        items = await self.outbox.pending()
        if items:
            logger.warning("Discord: sending %d message(s) a previous run left unsent", len(items))
            await self.deliver(items)
        return len(items)

    async def deliver(self, items: Sequence[OutboxItem]) -> None:
        channels: dict[str, list[OutboxItem]] = {}
        for item in items:
            channels.setdefault(item.chat, []).append(item)
        await asyncio.gather(*(self._deliver_channel(c, group) for c, group in channels.items()))

    async def _deliver_channel(self, channel: str, items: list[OutboxItem]) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            for item in items:
                try:
                    await self._send_one(item.body)
                except _TokenExpiredError:
                    logger.warning(
                        "Discord: an answer to an interaction in %s was not sent within the "
                        "15 minutes its token lives (dropped)",
                        channel,
                    )
                except discord.HTTPException as exc:
                    if exc.status >= 500 or exc.status == 429:
                        logger.error("Discord: giving up on channel %s for now: %s", channel, exc)
                        return  # stays pending; sent again at the next start
                    logger.error("Discord refused a message to %s: %s (dropped)", channel, exc)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    logger.error("Discord: channel %s unreachable for now: %s", channel, exc)
                    return
                await self.outbox.sent(item)

    async def _send_one(self, body: dict[str, Any]) -> None:
        reply_to = body.get("reply_to")
        target = body.get("followup")
        if target is not None and expired(target):
            raise _TokenExpiredError
        files = [
            discord.File(io.BytesIO(base64.b64decode(f["data"])), filename=str(f["filename"]))
            for f in body.get("files") or []
        ]
        approval = body.get("approval_id")
        with discord.http.handle_message_parameters(
            content=str(body.get("content") or "") or None,
            files=files or discord.utils.MISSING,
            allowed_mentions=ALLOWED_MENTIONS,
            message_reference=(
                {
                    "message_id": int(reply_to),
                    "channel_id": int(body["channel_id"]),
                    "fail_if_not_exists": False,
                }
                if reply_to
                else discord.utils.MISSING
            ),
            view=approval_view(str(approval)) if approval else discord.utils.MISSING,
            flags=(
                discord.MessageFlags(ephemeral=True)
                if target is not None and target.get("ephemeral")
                else discord.utils.MISSING
            ),
        ) as params:
            if target is None:
                await self._http.send_message(int(body["channel_id"]), params=params)
                return
            # an interaction follow-up: discord.py's Interaction.followup, from the outbox
            route = discord.http.Route(
                "POST",
                "/webhooks/{webhook_id}/{webhook_token}",
                webhook_id=int(target["application_id"]),
                webhook_token=str(target["token"]),
            )
            if params.files:
                await self._http.request(route, files=params.files, form=params.multipart)
            else:
                await self._http.request(route, json=params.payload)


def bodies_for(
    channel_id: int,
    pieces: Sequence[str],
    *,
    reply_to: int | None,
    files: Sequence[tuple[str, bytes]] = (),
    followup: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Outbox bodies for ``pieces`` sent to ``channel_id``: the first replies to
    ``reply_to``, the last carries ``files`` (name, content). With ``followup``
    (:func:`followup_target`) they are follow-ups of that interaction instead."""
    first = reply_to if followup is None else None
    where: dict[str, Any] = {} if followup is None else {"followup": followup}
    bodies: list[dict[str, Any]] = [
        {"channel_id": channel_id, "content": piece, "reply_to": first if i == 0 else None, **where}
        for i, piece in enumerate(pieces)
    ]
    if files:
        if not bodies:
            bodies.append({"channel_id": channel_id, "content": "", "reply_to": first, **where})
        bodies[-1]["files"] = [
            {"filename": name, "data": base64.b64encode(data).decode()} for name, data in files
        ]
    return bodies


@contextlib.asynccontextmanager
async def typing(http: Any, channel_id: int, *, interval_s: float) -> AsyncIterator[None]:
    """Show "typing…" in the channel (renewed every ``interval_s``) until the block
    exits, however it exits. The first request is not awaited: the turn starts at once."""

    async def show() -> None:
        try:
            await http.send_typing(channel_id)
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            logger.debug("Typing indicator failed: %s", exc)

    async def renew() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await show()

    loop = asyncio.get_running_loop()
    first = loop.create_task(show())
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
