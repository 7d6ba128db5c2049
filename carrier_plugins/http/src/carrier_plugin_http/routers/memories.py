"""A room's messages (``GET /agents/{agent_id}/rooms/{room_id}/memories``) and the files
sent with them (``.../memories/{memory_id}/attachments/{attachment_id}``).

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

from carrier.types import MemoryType
from carrier_plugin_http import schemas
from carrier_plugin_http.deps import Agent, Hub, Reader, Settings, check_room_for_read
from carrier_plugin_http.messages import media_type, upload_path

__all__ = ["router"]

router = APIRouter(prefix="/agents/{agent_id}/rooms/{room_id}/memories", tags=["agents"])
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
