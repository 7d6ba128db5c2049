"""``create_app``: the FastAPI application serving an :class:`AgentHub`.

Routes (one router per resource, :mod:`carrier_plugin_http.routers`):
``POST /{agent_id}/message`` (ElizaOS direct client), its streaming twin
``POST /{agent_id}/message/stream`` (Server-Sent Events), ``GET /me``, ``GET /agents``,
``GET /agents/{agent_id}``, ``GET /agents/{agent_id}/rooms/{room_id}/memories``, the
uploaded files under ``.../memories/{memory_id}/attachments/{attachment_id}``,
``GET /health``, ``GET /ready``, the chat page at ``/`` and ``/openapi.json``.
Every error is a JSON object ``{"error": "...", "requestId": "..."}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware import Middleware

from carrier_plugin_http import schemas
from carrier_plugin_http.errors import install_error_handlers
from carrier_plugin_http.middleware import (
    BodyLimitMiddleware,
    LocalGuardMiddleware,
    RequestIdMiddleware,
    split_host,
)
from carrier_plugin_http.routers import agents, approvals, memories, messages, service
from carrier_plugin_http.security import RateLimiter

if TYPE_CHECKING:
    from carrier_plugin_http.hub import AgentHub
    from carrier_plugin_http.settings import HttpSettings

__all__ = ["create_app"]

#: Bind addresses that name no host (every interface).
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def create_app(hub: AgentHub, settings: HttpSettings) -> FastAPI:
    """Build the app. The hub's runtimes must be started before it serves.

    Args:
        hub: The agents to serve.
        settings: Limits, tokens, allowed hosts and CORS origins; ``host`` should be
            the address actually bound (the tokenless server answers to it).

    Returns:
        The ASGI application (run it with uvicorn).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach()
        try:
            yield
        finally:
            await hub.aclose()

    app = FastAPI(
        title="Carrier HTTP API",
        version="0.1.0",
        description="Talk to Carrier agents; compatible with ElizaOS's direct client.",
        lifespan=lifespan,
        responses={401: {"model": schemas.Error}, 429: {"model": schemas.Error}},
        middleware=_middleware(settings),
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.limiter = RateLimiter(
        per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
    )
    install_error_handlers(app)
    for module in (messages, agents, memories, approvals, service):
        app.include_router(module.router)
    app.include_router(memories.everywhere)
    return app


def _middleware(settings: HttpSettings) -> list[Middleware]:
    """Outermost first: request ids, the Host and Origin checks, CORS, the body limit.

    Without a token the server is for this machine only: ``Host`` must name it (so a
    DNS-rebinding page cannot reach it) and other sites' pages may not post to it.
    With a token, ``Host`` is checked only when ``CARRIER_HTTP_ALLOWED_HOSTS`` is set.
    """
    stack = [Middleware(RequestIdMiddleware)]
    if settings.tokenless or settings.allowed_hosts:
        bound, _ = split_host(settings.host)
        hosts = {*settings.allowed_hosts, *({bound} - _ANY_ADDRESS)}
        stack.append(
            Middleware(
                LocalGuardMiddleware,
                hosts=hosts,
                check_origin=settings.tokenless,
                origins=settings.cors_origins,
            )
        )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                expose_headers=["X-Request-ID"],
            )
        )
    stack.append(
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.max_upload_bytes,
        )
    )
    return stack
