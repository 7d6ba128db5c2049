"""Bearer-token identities, the per-client rate limit and the body-size limit."""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import carrier

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from carrier_plugin_http.settings import HttpSettings

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "BodyLimitMiddleware",
    "Identity",
    "RateLimiter",
    "authenticate",
    "check_bind_address",
    "is_loopback",
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_address(host: str, settings: HttpSettings) -> None:
    """Refuse a non-loopback address when no token protects the API.

    Raises:
        carrier.ConfigurationError: ``host`` is reachable from other machines and
            neither ``CARRIER_HTTP_TOKEN`` nor ``CARRIER_HTTP_USER_TOKENS`` is set.
    """
    if not is_loopback(host) and settings.token is None and not settings.user_tokens:
        raise carrier.ConfigurationError(
            f"Refusing to serve on {host!r} without authentication: anyone who can reach "
            f"it could talk to your agents. Set CARRIER_HTTP_TOKEN (clients then send "
            f"'Authorization: Bearer <token>'), or bind to 127.0.0.1."
        )


@dataclass(frozen=True)
class Identity:
    """Who made a request.

    Attributes:
        user_id: The user a per-user token belongs to; ``None`` when the request may
            speak for any user (the server token, or no token on loopback).
        client: The rate-limit key: the user, else the client's address.
    """

    user_id: str | None
    client: str


def authenticate(authorization: str | None, client_host: str, settings: HttpSettings) -> Identity:
    """Check the ``Authorization`` header against the configured tokens.

    Returns:
        The request's identity.

    Raises:
        PermissionError: The header is missing or names no known token (the message
            says which, never the token).
    """
    server_token = settings.token.get_secret_value() if settings.token else None
    if server_token is None and not settings.user_tokens:
        return Identity(user_id=None, client=client_host)
    scheme, _, presented = (authorization or "").partition(" ")
    if not authorization:
        raise PermissionError(
            "This server needs a bearer token: send 'Authorization: Bearer <token>'."
        )
    if scheme.lower() != "bearer" or not presented.strip():
        raise PermissionError("The Authorization header must read 'Bearer <token>'.")
    presented = presented.strip()
    if server_token is not None and hmac.compare_digest(presented.encode(), server_token.encode()):
        return Identity(user_id=None, client=client_host)
    for token, user_id in settings.user_tokens.items():
        if hmac.compare_digest(presented.encode(), token.encode()):
            return Identity(user_id=user_id, client=f"user:{user_id}")
    raise PermissionError("The bearer token is not valid for this server.")


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests, bursts of ``burst``.

    Buckets of idle clients are dropped, so memory stays bounded.
    """

    def __init__(self, *, per_minute: int, burst: int, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether the limit is on (``per_minute`` > 0)."""
        return self.rate > 0

    def acquire(self, client: str, *, now: float | None = None) -> float:
        """Take one request from ``client``'s bucket.

        Returns:
            0 if the request may go ahead, else the seconds until it could.
        """
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)  # least recently seen
        return wait


def retry_after(wait_s: float) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait_s)))


class BodyLimitMiddleware:
    """Answer 413 when a request body is larger than allowed.

    Multipart bodies (file uploads) may reach ``max_upload_bytes``, others
    ``max_body_bytes``. A declared ``Content-Length`` is checked before reading;
    a chunked body is counted as it arrives and buffered up to the limit.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.max_upload_bytes if multipart else self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _json_error(send, 400, "The Content-Length header is not a number.")
                return
            if int(declared) > limit:
                await _drain(receive, int(declared))
                await _too_large(send, limit)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive, _DRAIN_BYTES)
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


_DRAIN_BYTES = 16 * 1024 * 1024


async def _drain(receive: Receive, declared: int) -> None:
    """Read and drop a refused body (up to 16 MiB), so the client sees the 413
    instead of a reset connection; a larger body is cut off."""
    if declared > _DRAIN_BYTES:
        return
    drained = 0
    while drained <= _DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send: Send, limit: int) -> None:
    await _json_error(
        send, 413, f"The request body is larger than this server accepts ({limit} bytes)."
    )


async def _json_error(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
