"""Bearer-token identities, the per-client rate limit and the bind-address check."""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import carrier
from carrier.types import Role

if TYPE_CHECKING:
    from carrier_plugin_http.settings import HttpSettings

__all__ = [
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
    if not is_loopback(host) and settings.tokenless:
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
        role: The sender's role: the per-user token's, else ``MEMBER``. It comes from
            the token only, never from the request's body.
    """

    user_id: str | None
    client: str
    role: Role = Role.MEMBER


def authenticate(authorization: str | None, client_host: str, settings: HttpSettings) -> Identity:
    """Check the ``Authorization`` header against the configured tokens.

    Returns:
        The request's identity.

    Raises:
        PermissionError: The header is missing or names no known token (the message
            says which, never the token).
    """
    server_token = settings.token.get_secret_value() if settings.token else None
    if settings.tokenless:
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
    for grant in settings.user_tokens:
        if hmac.compare_digest(presented.encode(), grant.token.get_secret_value().encode()):
            return Identity(user_id=grant.user, client=f"user:{grant.user}", role=grant.role)
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
