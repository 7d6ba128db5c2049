"""``create_app``: the FastAPI application serving an :class:`AgentHub`.

Routes: ``POST /{agent_id}/message`` (ElizaOS direct client), its streaming twin
``POST /{agent_id}/message/stream`` (Server-Sent Events), ``GET /me``, ``GET /agents``,
``GET /agents/{agent_id}``, ``GET /agents/{agent_id}/rooms/{room_id}/memories``, the
uploaded files under ``.../memories/{memory_id}/attachments/{attachment_id}``,
``GET /health``, ``GET /ready``, the chat page at ``/`` and ``/openapi.json``.
Every error is a JSON object ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from carrier.errors import InputError, StoreError
from carrier.types import IncomingMessage
from carrier_plugin_http import schemas
from carrier_plugin_http.messages import (
    BadRequestError,
    discard_uploads,
    media_type,
    read_message,
    store_upload,
    upload_path,
)
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
_RoomId = Annotated[str, Path(max_length=200)]
_Reader = Annotated[
    str | None, Query(alias="userId", max_length=200, description="Reader; default 'user'.")
]
#: Uploads a browser may show in the page; anything else is served as a download.
_INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/pdf"}
)


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

    async def may_read(runtime: AgentRuntime, room_id: str, reader: str) -> None:
        if await runtime.store.get_participant(room_id, reader) is None:
            raise HTTPException(403, f"User {reader!r} does not take part in room {room_id!r}.")

    def attachment_url(
        request: Request, agent_id: str, room_id: str, memory_id: str, attachment_id: str
    ) -> str:
        parts = (agent_id, "rooms", room_id, "memories", memory_id, "attachments", attachment_id)
        path = "/".join(quote(part, safe=":@") for part in parts)
        return f"{request.scope.get('root_path', '')}/agents/{path}"

    async def incoming(
        request: Request, runtime: AgentRuntime, identity: Identity
    ) -> IncomingMessage:
        try:
            message, upload = await read_message(request, settings)
        except BadRequestError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        try:
            runtime.refuse_oversized(message.text)  # before its file is written
        except InputError as exc:
            if upload is not None:
                await upload.close()
            raise HTTPException(413, str(exc)) from None
        # a message with a file gets its id here, so the file's URL can name it
        message_id = str(uuid.uuid4()) if upload is not None else None
        attachments = []
        try:
            user_id = speaker(identity, message.user_id)
            room_id = message.room_id or f"default-room-{runtime.agent_id}"
            await take_part(runtime, room_id, user_id)
            if upload is not None and message_id is not None:
                url = functools.partial(
                    attachment_url, request, runtime.agent_id, room_id, message_id
                )
                attachments.append(await store_upload(upload, settings, url=url))
        finally:
            if upload is not None:
                await upload.close()
        return IncomingMessage(
            text=message.text,
            user_id=user_id,
            user_name=message.user_name or message.name,
            room_id=room_id,
            source="http",
            message_id=message_id,
            attachments=attachments,
        )

    # ---- errors: always {"error": ...} -----------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(InputError)
    @app.exception_handler(StoreError)
    async def carrier_error(request: Request, exc: Exception) -> JSONResponse:
        status, error = schemas.failure(exc)
        return JSONResponse({"error": error}, status)

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
        received = await incoming(request, runtime, identity)
        try:
            reply = await hub.send(runtime, received)
        except Exception:  # the message was not stored: neither is its file
            await discard_uploads(received.attachments, settings)
            raise
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
        received = await incoming(request, runtime, identity)
        discard = functools.partial(discard_uploads, received.attachments, settings)
        items = hub.stream(runtime, received, on_refused=discard)

        async def events() -> AsyncIterator[str]:
            async for item in items:
                yield f"event: {item.event}\ndata: {json.dumps(item.data)}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # ---- agents and memories ---------------------------------------------------------

    @app.get("/me", tags=["agents"], response_model=schemas.Me)
    async def me(identity: Caller) -> dict[str, Any]:
        """The user this request's token speaks for, if it is a per-user token."""
        return {"userId": identity.user_id}

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
        room_id: _RoomId,
        identity: Caller,
        user_id: _Reader = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[
            float | None, Query(ge=0, le=1e11, description="Only memories created before this.")
        ] = None,
    ) -> dict[str, Any]:
        runtime = agent(agent_id)
        await may_read(runtime, room_id, speaker(identity, user_id))
        found = await runtime.store.get_memories(
            agent_id=runtime.agent_id, room_id=room_id, limit=limit, before=before
        )
        return {
            "roomId": room_id,
            "memories": [schemas.memory_out(m) for m in found],
            "nextBefore": found[0].created_at if len(found) == limit else None,
        }

    @app.get(
        "/agents/{agent_id}/rooms/{room_id}/memories/{memory_id}/attachments/{attachment_id}",
        tags=["agents"],
        summary="A file sent with a message, with the content type it was uploaded with.",
        response_class=FileResponse,
        responses={
            200: {
                "description": "The file as uploaded.",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
            403: {"model": schemas.Error},
            404: {"model": schemas.Error},
        },
    )
    async def attachment(
        agent_id: _AgentId,
        room_id: _RoomId,
        memory_id: Annotated[str, Path(max_length=200)],
        attachment_id: Annotated[str, Path(max_length=200)],
        identity: Caller,
        user_id: _Reader = None,
    ) -> Response:
        runtime = agent(agent_id)
        await may_read(runtime, room_id, speaker(identity, user_id))
        memory = await runtime.store.get_memory(memory_id)
        found = None
        if memory is not None and (memory.agent_id, memory.room_id) == (runtime.agent_id, room_id):
            found = next((a for a in memory.content.attachments if a.id == attachment_id), None)
        path = upload_path(found, settings) if found is not None else None
        stat_result = await asyncio.to_thread(_stat_file, path) if path is not None else None
        if found is None or path is None or stat_result is None:
            raise HTTPException(
                404,
                f"Message {memory_id!r} in room {room_id!r} has no uploaded file "
                f"{attachment_id!r} on this server.",
            )
        content_type = media_type(found.content_type)
        inline = content_type.split(";")[0].strip().lower() in _INLINE_TYPES
        return FileResponse(
            path,
            media_type=content_type,
            filename=found.title or path.name,
            stat_result=stat_result,
            content_disposition_type="inline" if inline else "attachment",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private"},
        )

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


def _stat_file(path: FilePath) -> os.stat_result | None:
    """The file's ``stat``, or ``None`` if it is gone or not a regular file."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None
