"""``create_app``: the FastAPI application serving an :class:`AgentHub`.

Routes: ``POST /{agent_id}/message`` (ElizaOS direct client), its streaming twin
``POST /{agent_id}/message/stream`` (Server-Sent Events), ``GET /agents``,
``GET /agents/{agent_id}``, ``GET /agents/{agent_id}/rooms/{room_id}/memories``,
``GET /health``, ``GET /ready``, the chat page at ``/`` and ``/openapi.json``.
Every error is a JSON object ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from carrier.types import IncomingMessage
from carrier_plugin_http import schemas
from carrier_plugin_http.messages import BadRequestError, read_message, store_upload
from carrier_plugin_http.security import (
    BodyLimitMiddleware,
    Identity,
    RateLimiter,
    authenticate,
    retry_after,
)

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_http.hub import AgentHub
    from carrier_plugin_http.settings import HttpSettings

__all__ = ["create_app"]

_bearer = HTTPBearer(auto_error=False, description="CARRIER_HTTP_TOKEN or a per-user token.")
_AgentId = Annotated[str, Path(description="The agent's id or name (any case).", max_length=200)]


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    """Authenticate and rate-limit the request (``create_app`` installs the check)."""
    identify: Callable[[Request], Identity] = request.app.state.identify
    return identify(request)


Caller = Annotated[Identity, Depends(_caller)]


def create_app(hub: AgentHub, settings: HttpSettings) -> FastAPI:
    """Build the app. The hub's runtimes must be started before it serves.

    Args:
        hub: The agents to serve.
        settings: Limits, tokens and CORS origins.

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
    )
    limiter = RateLimiter(
        per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
    )
    page = files("carrier_plugin_http").joinpath("static/index.html").read_text("utf-8")

    def identify(request: Request) -> Identity:
        client = request.client.host if request.client else "unknown"
        try:
            identity = authenticate(request.headers.get("authorization"), client, settings)
        except PermissionError as exc:
            limit(client)  # guessing tokens is rate limited too
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        limit(identity.client)
        return identity

    def limit(client: str) -> None:
        wait = limiter.acquire(client)
        if wait:
            raise HTTPException(
                429,
                f"Too many requests; try again in {retry_after(wait)} s.",
                headers={"Retry-After": retry_after(wait)},
            )

    app.state.identify = identify

    def agent(key: str) -> AgentRuntime:
        runtime = hub.find(key)
        if runtime is None:
            raise HTTPException(404, f"No agent with the id or name {key!r}.")
        return runtime

    def speaker(identity: Identity, requested: str | None) -> str:
        if identity.user_id is None:
            return requested or "user"
        if requested not in (None, identity.user_id):
            raise HTTPException(403, f"Your token speaks for user {identity.user_id!r} only.")
        return identity.user_id

    async def take_part(runtime: AgentRuntime, room_id: str, user_id: str) -> None:
        store = runtime.store
        if await store.get_participant(room_id, user_id) is not None:
            return
        if await store.get_room(room_id) is not None:
            raise HTTPException(403, f"User {user_id!r} does not take part in room {room_id!r}.")

    async def incoming(
        request: Request, runtime: AgentRuntime, identity: Identity
    ) -> IncomingMessage:
        try:
            message, upload = await read_message(request, settings)
        except BadRequestError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        try:
            user_id = speaker(identity, message.user_id)
            room_id = message.room_id or f"default-room-{runtime.agent_id}"
            await take_part(runtime, room_id, user_id)
            attachments = [await store_upload(upload, settings)] if upload is not None else []
        finally:
            if upload is not None:
                await upload.close()
        return IncomingMessage(
            text=message.text,
            user_id=user_id,
            user_name=message.user_name or message.name,
            room_id=room_id,
            source="http",
            attachments=attachments,
        )

    # ---- errors: always {"error": ...} -----------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", "")}
            for e in exc.errors()
        ]
        reasons = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
        return JSONResponse({"error": f"Invalid request: {reasons}.", "details": details}, 400)

    # ---- messages --------------------------------------------------------------------

    message_body = schemas.message_request_body()

    @app.post(
        "/{agent_id}/message",
        tags=["messages"],
        summary="Send a message; get the agent's responses (ElizaOS direct client).",
        response_model=list[schemas.ContentOut],
        responses=schemas.MESSAGE_ERRORS,
        openapi_extra={"requestBody": message_body},
    )
    async def message(agent_id: _AgentId, request: Request, identity: Caller) -> Response:
        runtime = agent(agent_id)
        reply = await hub.send(runtime, await incoming(request, runtime, identity))
        if reply.error:
            return JSONResponse({"error": reply.error, "messageId": reply.message.id}, 503)
        return JSONResponse(schemas.contents(runtime, reply.responses))

    @app.post(
        "/{agent_id}/message/stream",
        tags=["messages"],
        summary="Send a message; stream tokens and action events (Server-Sent Events).",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
            **schemas.MESSAGE_ERRORS,
        },
        openapi_extra={"requestBody": message_body},
    )
    async def message_stream(agent_id: _AgentId, request: Request, identity: Caller) -> Response:
        runtime = agent(agent_id)
        items = hub.stream(runtime, await incoming(request, runtime, identity))

        async def events() -> AsyncIterator[str]:
            async for item in items:
                yield f"event: {item.event}\ndata: {json.dumps(item.data)}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # ---- agents and memories ---------------------------------------------------------

    @app.get("/agents", tags=["agents"], response_model=schemas.AgentList)
    async def agents(identity: Caller) -> dict[str, Any]:
        return {"agents": [schemas.agent_summary(r) for r in hub.runtimes]}

    @app.get(
        "/agents/{agent_id}",
        tags=["agents"],
        response_model=schemas.AgentDetail,
        responses={404: {"model": schemas.Error}},
    )
    async def agent_detail(agent_id: _AgentId, identity: Caller) -> dict[str, Any]:
        return schemas.agent_detail(agent(agent_id))

    @app.get(
        "/agents/{agent_id}/rooms/{room_id}/memories",
        tags=["agents"],
        summary="A page of a room's messages, oldest first; page back with 'before'.",
        response_model=schemas.MemoryPage,
        responses={403: {"model": schemas.Error}, 404: {"model": schemas.Error}},
    )
    async def memories(
        agent_id: _AgentId,
        room_id: Annotated[str, Path(max_length=200)],
        identity: Caller,
        user_id: Annotated[
            str | None, Query(alias="userId", max_length=200, description="Reader; default 'user'.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[
            float | None, Query(ge=0, le=1e11, description="Only memories created before this.")
        ] = None,
    ) -> dict[str, Any]:
        runtime = agent(agent_id)
        reader = speaker(identity, user_id)
        if await runtime.store.get_participant(room_id, reader) is None:
            raise HTTPException(403, f"User {reader!r} does not take part in room {room_id!r}.")
        found = await runtime.store.get_memories(
            agent_id=runtime.agent_id, room_id=room_id, limit=limit, before=before
        )
        return {
            "roomId": room_id,
            "memories": [schemas.memory_out(m) for m in found],
            "nextBefore": found[0].created_at if len(found) == limit else None,
        }

    # ---- health, readiness, the page ------------------------------------------------

    @app.get("/health", tags=["service"], response_model=schemas.Status)
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["service"],
        response_model=schemas.Status,
        responses={503: {"model": schemas.Status}},
    )
    async def ready() -> Response:
        try:
            for runtime in hub.runtimes:
                await runtime.store.get_room(f"readiness-{runtime.agent_id}")
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, 503)
        return JSONResponse({"status": "ready", "agents": len(hub.runtimes)})

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    return app
