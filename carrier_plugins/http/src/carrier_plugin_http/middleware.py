"""ASGI middleware: request ids, the tokenless server's Host and Origin checks, and the
body-size limit. Each answers its refusals as JSON errors with the request id."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from carrier_plugin_http.errors import INTERNAL, error_body, logger, request_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "LOOPBACK_HOSTS",
    "BodyLimitMiddleware",
    "LocalGuardMiddleware",
    "RequestIdMiddleware",
    "json_error",
    "split_host",
]

#: Names every server answers to: the loopback addresses.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Methods a cross-site page must not use on a server without a token.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestIdMiddleware:
    """Give each request an id (``scope["state"]["request_id"]``), send it back in the
    ``X-Request-ID`` header, and answer an exception no handler took as a JSON 500
    (its details go to the log under that id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("Request %s (%s %s) failed", rid, scope["method"], scope["path"])
            if started:
                raise  # the answer is on its way: only closing the connection is left
            await json_error(send_with_id, 500, INTERNAL, scope)


class LocalGuardMiddleware:
    """Keep other web sites away from a server on this machine.

    ``Host`` must name this server (loopback, ``bound_host`` or ``allowed_hosts``),
    which stops DNS-rebinding pages; with ``check_origin``, unsafe methods (POST, PUT,
    PATCH, DELETE) sent by a page from another origin (a cross-site form post or
    fetch) are refused with 403. A request without ``Origin`` (curl, SDKs) passes.

    Args:
        app: The wrapped application.
        hosts: Host names allowed in the ``Host`` header and in same-server origins;
            ``None`` turns the ``Host`` check off.
        check_origin: Whether to refuse unsafe requests from foreign origins.
        origins: Origins allowed besides the server's own (CORS origins).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: Iterable[str] | None,
        check_origin: bool,
        origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.check_origin = check_origin
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, port = split_host(headers.get("host", ""))
        if self.hosts is not None and host not in self.hosts | LOOPBACK_HOSTS:
            await json_error(
                send,
                400,
                f"This server does not answer to the host name {host or '(none)'!r}. "
                f"Use http://127.0.0.1 or http://localhost, or have its operator add the "
                f"name to CARRIER_HTTP_ALLOWED_HOSTS.",
                scope,
            )
            return
        if self.check_origin and scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin")
            foreign = (
                headers.get("sec-fetch-site") == "cross-site"
                if origin is None
                else not self._own(origin, port)
            )
            if foreign:
                await json_error(
                    send,
                    403,
                    f"Refusing a {scope['method']} request sent by another web site "
                    f"({origin or 'cross-site'}). This server has no token, so only its own "
                    f"page may send it messages; set CARRIER_HTTP_TOKEN, or add the site to "
                    f"CARRIER_HTTP_CORS_ORIGINS.",
                    scope,
                )
                return
        await self.app(scope, receive, send)

    def _own(self, origin: str, port: int | None) -> bool:
        """Whether ``origin`` is this server (any of its names, the same port) or a
        configured CORS origin."""
        if origin.rstrip("/").lower() in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        names = (self.hosts or frozenset()) | LOOPBACK_HOSTS
        return (
            parts.scheme in _DEFAULT_PORTS
            and (parts.hostname or "") in names
            and origin_port == (port or _DEFAULT_PORTS[parts.scheme])
        )


def split_host(value: str) -> tuple[str, int | None]:
    """``("name", port)`` from a ``Host`` header (``[::1]:3000`` gives ``("::1", 3000)``);
    the name is lower case, without a trailing dot; a bad port gives ``None``."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() and len(port) <= 5 else None


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
                await json_error(send, 400, "The Content-Length header is not a number.", scope)
                return
            if int(declared) > limit:
                await _drain(receive, int(declared))
                await _too_large(send, limit, scope)
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
                await _too_large(send, limit, scope)
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


async def _too_large(send: Send, limit: int, scope: Scope) -> None:
    await json_error(
        send, 413, f"The request body is larger than this server accepts ({limit} bytes).", scope
    )


async def json_error(send: Send, status: int, error: str, scope: Scope) -> None:
    """Send a JSON error answer (with the request id) and close the connection."""
    body = json.dumps(error_body(error, request_id(scope))).encode()
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
