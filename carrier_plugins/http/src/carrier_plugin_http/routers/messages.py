"""``POST /{agent_id}/message`` (ElizaOS direct client) and its streaming twin
``POST /{agent_id}/message/stream`` (Server-Sent Events)."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from carrier.errors import InputError
from carrier.types import IncomingMessage, RoomType
from carrier_plugin_http import schemas
from carrier_plugin_http.deps import (
    Agent,
    Caller,
    Hub,
    Settings,
    check_room_for_post,
    speaker,
)
from carrier_plugin_http.errors import error_body, not_answered, request_id
from carrier_plugin_http.messages import (
    BadRequestError,
    discard_uploads,
    read_message,
    store_upload,
)

__all__ = ["attachment_url", "router"]

router = APIRouter(tags=["messages"])
_BODY = schemas.message_request_body()


def attachment_url(
    request: Request, agent_id: str, room_id: str, memory_id: str, attachment_id: str
) -> str:
    """The server-relative URL that serves an uploaded file back."""
    parts = (agent_id, "rooms", room_id, "memories", memory_id, "attachments", attachment_id)
    path = "/".join(quote(part, safe=":@") for part in parts)
    return f"{request.scope.get('root_path', '')}/agents/{path}"


async def _received(
    request: Request, runtime: Agent, identity: Caller, hub: Hub, settings: Settings
) -> IncomingMessage:
    """The request's message for the runtime, its file (if any) written to disk.

    The sender and role come from the token (or, without a per-user token, the
    ``userId`` field and MEMBER). Of the body only the text, the names, the room, its
    type and the file reach the runtime: no role, no metadata.
    """
    try:
        message, upload = await read_message(request, settings)
    except BadRequestError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    try:
        try:
            runtime.refuse_oversized(message.text)  # before its file is written
        except InputError as exc:
            raise HTTPException(413, str(exc)) from None
        user_id = speaker(hub, identity, message.user_id)
        incoming = IncomingMessage(
            text=message.text,
            user_id=user_id,
            user_name=message.user_name or message.name,
            room_id=message.room_id,
            room_type=RoomType(message.room_type),
            source="http",
            role=identity.role,
        )
        try:
            runtime.refuse_unstorable(incoming)  # before its file is written, too
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        room_id = runtime.room_id_for(incoming)
        await check_room_for_post(hub, runtime, room_id, user_id)
        if upload is None:
            return incoming
        # a message with a file gets its id here, so the file's URL can name it
        message_id = str(uuid.uuid4())
        url = functools.partial(attachment_url, request, runtime.agent_id, room_id, message_id)
        attachment = await store_upload(upload, settings, url=url)
        return incoming.model_copy(update={"message_id": message_id, "attachments": [attachment]})
    finally:
        if upload is not None:
            await upload.close()


Received = Annotated[IncomingMessage, Depends(_received)]


@router.post(
    "/{agent_id}/message",
    summary="Send a message; get the agent's responses (ElizaOS direct client).",
    response_model=list[schemas.ContentOut],
    responses=schemas.MESSAGE_ERRORS,
    openapi_extra={"requestBody": _BODY},
)
async def message(
    request: Request, runtime: Agent, received: Received, hub: Hub, settings: Settings
) -> Response:
    try:
        reply = await hub.send(runtime, received)
    except Exception:  # the message was not stored: neither is its file
        await discard_uploads(received.attachments, settings)
        raise
    if reply.error:
        rid = request_id(request.scope)
        body = error_body(not_answered(reply, rid), rid, messageId=reply.message.id)
        return JSONResponse(body, 503)
    return JSONResponse(schemas.contents(runtime, reply.responses))


@router.post(
    "/{agent_id}/message/stream",
    summary="Send a message; stream tokens and action events (Server-Sent Events).",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **schemas.MESSAGE_ERRORS,
    },
    openapi_extra={"requestBody": _BODY},
)
async def message_stream(
    request: Request, runtime: Agent, received: Received, hub: Hub, settings: Settings
) -> Response:
    discard = functools.partial(discard_uploads, received.attachments, settings)
    items = hub.stream(runtime, received, on_refused=discard, request_id=request_id(request.scope))

    async def events() -> AsyncIterator[str]:
        async for item in items:
            yield f"event: {item.event}\ndata: {json.dumps(item.data)}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
