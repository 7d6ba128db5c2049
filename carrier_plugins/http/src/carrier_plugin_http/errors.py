"""Error answers: a sentence the user can act on and the request's id, never internals.

Every error body is ``{"error": "...", "requestId": "..."}``; the same id is in the
``X-Request-ID`` header of every response. What went wrong inside (exception types,
store and model messages, backend URLs) goes to the log under that id, never to the
client. Refusals the user can fix (bad input, a room they may not use) say why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from carrier.errors import AccessError, InputError, StoreError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from carrier.types import Reply

__all__ = [
    "INTERNAL",
    "NOT_ANSWERED",
    "STORE_DOWN",
    "error_body",
    "failure",
    "install_error_handlers",
    "logger",
    "not_answered",
    "request_id",
]

logger = logging.getLogger("carrier_plugin_http")

NOT_ANSWERED = (
    "The agent could not answer this message right now; the message is saved in the "
    "conversation. Try again in a while, and quote the request id if it keeps failing."
)
STORE_DOWN = (
    "The server cannot reach its memory store right now, so the message was not saved. "
    "Try again in a while, and quote the request id if it keeps failing."
)
INTERNAL = (
    "Something went wrong on the server while handling this request. Quote the request "
    "id to the server's operator."
)


def request_id(scope: Mapping[str, Any]) -> str:
    """The id :class:`~carrier_plugin_http.middleware.RequestIdMiddleware` gave the
    request (``"-"`` outside it)."""
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


def error_body(error: str, rid: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": error, "requestId": rid, **extra}


def failure(exc: Exception, rid: str) -> tuple[int, str]:
    """The HTTP status and safe error text for a message the runtime could not take,
    logging what the client is not told.

    A room the sender may not use is 403, other refused input 400 (their messages
    are meant for users), a failing memory store 503, anything else 500.
    """
    if isinstance(exc, AccessError):
        return 403, str(exc)
    if isinstance(exc, InputError):
        return 400, str(exc)
    if isinstance(exc, StoreError):
        logger.warning("Request %s: the memory store failed: %s", rid, exc)
        return 503, STORE_DOWN
    logger.error("Request %s failed", rid, exc_info=exc)
    return 500, INTERNAL


def not_answered(reply: Reply, rid: str) -> str:
    """The safe text for a stored message the runtime could not answer (``Reply.error``,
    which may name exceptions or backend URLs, goes to the log)."""
    logger.warning(
        "Request %s: message %s was stored but not answered: %s", rid, reply.message.id, reply.error
    )
    return NOT_ANSWERED


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error raised in a route as JSON with the request id."""
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(InputError, _carrier_error)
    app.add_exception_handler(StoreError, _carrier_error)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = error_body(str(exc.detail), request_id(request.scope))
    return JSONResponse(body, exc.status_code, headers=exc.headers)


async def _carrier_error(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request.scope)
    status, error = failure(exc, rid)
    return JSONResponse(error_body(error, rid), status)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", "")}
        for e in exc.errors()
    ]
    reasons = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
    body = error_body(f"Invalid request: {reasons}.", request_id(request.scope), details=details)
    return JSONResponse(body, 400)
