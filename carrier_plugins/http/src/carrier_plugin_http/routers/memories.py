"""A room's messages (``GET /agents/{agent_id}/rooms/{room_id}/memories``) and the files
sent with them (``.../memories/{memory_id}/attachments/{attachment_id}``); forgetting
(``DELETE`` on a room's memories, or on ``/agents/{agent_id}/memories`` for every room,
with ``confirm=true``) deletes the caller's memories (``carrier.forgetting``).

Only the room's users read them, and only messages: facts, reflections, documents and
knowledge fragments the agent keeps about a room never leave the server, nor do a
message's thought and metadata.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse, Response

from carrier.forgetting import forget
from carrier.types import MemoryType
from carrier_plugin_http import schemas
from carrier_plugin_http.deps import Agent, Hub, Reader, Settings, check_room_for_read
from carrier_plugin_http.messages import media_type, upload_path

__all__ = ["everywhere", "router"]

router = APIRouter(prefix="/agents/{agent_id}/rooms/{room_id}/memories", tags=["agents"])
everywhere = APIRouter(prefix="/agents/{agent_id}/memories", tags=["agents"])
_Confirm = Annotated[bool, Query(description="Must be true: the deletion cannot be undone.")]
_RoomId = Annotated[str, Path(max_length=200)]
_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": schemas.Error},
    404: {"model": schemas.Error},
}
#: Uploads a browser may show in the page; anything else is served as a download.
_INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/pdf"}
)


@router.get(
    "",
    summary="A page of a room's messages, oldest first; page back with 'before'.",
    response_model=schemas.MemoryPage,
    responses=_REFUSED,
)
async def memories(
    runtime: Agent,
    room_id: _RoomId,
    reader: Reader,
    hub: Hub,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        float | None, Query(ge=0, le=1e11, description="Only memories created before this.")
    ] = None,
) -> dict[str, Any]:
    await check_room_for_read(hub, runtime, room_id, reader)
    found = await runtime.store.get_memories(
        agent_id=runtime.agent_id,
        room_id=room_id,
        type=MemoryType.MESSAGE,
        limit=limit,
        before=before,
    )
    return {
        "roomId": room_id,
        "memories": [schemas.memory_out(m) for m in found],
        "nextBefore": found[0].created_at if len(found) == limit else None,
    }


def _confirmed(confirm: bool) -> None:
    if not confirm:
        raise HTTPException(400, "Forgetting cannot be undone; repeat with confirm=true.")


@router.delete(
    "",
    summary="Forget the caller: delete their messages in the room, the agent's answers "
    "and what was learned about them there.",
    response_model=schemas.Forgotten,
    responses={400: {"model": schemas.Error}, **_REFUSED},
)
async def forget_in_room(
    runtime: Agent, room_id: _RoomId, reader: Reader, hub: Hub, confirm: _Confirm = False
) -> dict[str, Any]:
    _confirmed(confirm)
    await check_room_for_read(hub, runtime, room_id, reader)
    count = await forget(
        runtime.store, agent_id=runtime.agent_id, entity_id=reader, room_id=room_id
    )
    return {"userId": reader, "roomId": room_id, "deleted": count}


@everywhere.delete(
    "",
    summary="Forget the caller in every room: their messages, the agent's answers and "
    "what was learned about them.",
    response_model=schemas.Forgotten,
    responses={400: {"model": schemas.Error}, 404: {"model": schemas.Error}},
)
async def forget_everywhere(
    runtime: Agent, reader: Reader, confirm: _Confirm = False
) -> dict[str, Any]:
    _confirmed(confirm)
    count = await forget(runtime.store, agent_id=runtime.agent_id, entity_id=reader, room_id=None)
    return {"userId": reader, "roomId": None, "deleted": count}


@router.get(
    "/{memory_id}/attachments/{attachment_id}",
    summary="A file sent with a message, with the content type it was uploaded with.",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file as uploaded.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **_REFUSED,
    },
)
async def attachment(
    runtime: Agent,
    room_id: _RoomId,
    reader: Reader,
    hub: Hub,
    memory_id: Annotated[str, Path(max_length=200)],
    attachment_id: Annotated[str, Path(max_length=200)],
    settings: Settings,
) -> Response:
    await check_room_for_read(hub, runtime, room_id, reader)
    memory = await runtime.store.get_memory(memory_id)
    found = None
    if memory is not None and (memory.agent_id, memory.room_id, memory.type) == (
        runtime.agent_id,
        room_id,
        MemoryType.MESSAGE,
    ):
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


def _stat_file(path: FilePath) -> os.stat_result | None:
    """The file's ``stat``, or ``None`` if it is gone or not a regular file."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None
