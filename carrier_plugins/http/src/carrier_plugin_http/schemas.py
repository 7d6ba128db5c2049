"""Response models (for the OpenAPI schema) and the functions that fill them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from carrier.errors import CarrierError
from carrier_plugin_http.messages import MessageForm, MessageIn

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Attachment, Memory

__all__ = [
    "MESSAGE_ERRORS",
    "AgentDetail",
    "AgentList",
    "AgentSummary",
    "ContentOut",
    "Error",
    "Forgotten",
    "Me",
    "MemoryOut",
    "MemoryPage",
    "MessageContentOut",
    "RoomList",
    "RoomOut",
    "Status",
    "agent_detail",
    "agent_summary",
    "attachment_out",
    "contents",
    "memory_out",
    "message_request_body",
]


class Error(BaseModel):
    """Every error answer: what went wrong and what to do, and the request's id (also
    in the ``X-Request-ID`` header) to quote to the operator."""

    error: str
    requestId: str  # noqa: N815 - the JSON field's name


class ContentOut(BaseModel):
    """One message the agent sent, as the ElizaOS direct client reads it."""

    model_config = ConfigDict(extra="allow")

    id: str
    text: str
    user: str = Field(description="The agent's name.")
    action: str | None = Field(description="The first action the agent chose (ElizaOS v0).")
    actions: list[str] = Field(default_factory=list)


class AgentSummary(BaseModel):
    """An agent in ``GET /agents``."""

    id: str
    name: str
    username: str | None = None
    model: str | None = None  #: the model that answers (the large model's name)
    smallModel: bool = False  # noqa: N815 - a small demo model (``Model.small``)


class RoomOut(BaseModel):
    """One of the caller's rooms with the agent."""

    id: str = Field(description="The room's id: pass it as 'roomId' and in room URLs.")
    title: str | None = Field(
        description="The start of the caller's own first message in the room, on one line "
        "and shortened (at most 60 characters); null if they wrote none there."
    )
    lastActiveAt: float | None = Field(  # noqa: N815 - the wire name
        description="When the room's newest message was created (seconds since the "
        "epoch); null for a room without messages."
    )


class RoomList(BaseModel):
    """``GET /agents/{agent_id}/rooms``: the caller's rooms with the agent, the most
    recently active first."""

    rooms: list[RoomOut]


class Me(BaseModel):
    """``GET /me``: the user a per-user token speaks for (``null`` for the shared token
    or none: then the request names its user) and the role requests act with."""

    userId: str | None  # noqa: N815 - the JSON field's name
    role: str


class AgentList(BaseModel):
    """``GET /agents``."""

    agents: list[AgentSummary]


class AgentDetail(AgentSummary):
    """``GET /agents/{agent_id}``: the character's public fields (never settings or secrets)."""

    bio: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)


class MessageContentOut(BaseModel):
    """What a stored message says, as a user may see it (no thoughts, no metadata)."""

    text: str
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    inReplyTo: str | None = None  # noqa: N815 - the wire name
    source: str | None = None


class MemoryOut(BaseModel):
    """A stored message of the room."""

    id: str
    entityId: str  # noqa: N815 - the wire name
    roomId: str  # noqa: N815
    createdAt: float  # noqa: N815
    content: MessageContentOut


class MemoryPage(BaseModel):
    """A page of a room's memories, oldest first; pass ``nextBefore`` as ``before``."""

    roomId: str  # noqa: N815
    memories: list[MemoryOut]
    nextBefore: float | None = None  # noqa: N815


class Forgotten(BaseModel):
    """What a forget request deleted: the caller's memories in a room (or all rooms)."""

    userId: str  # noqa: N815
    roomId: str | None = None  # noqa: N815
    deleted: int


class Status(BaseModel):
    """Health and readiness."""

    model_config = ConfigDict(extra="allow")

    status: str


MESSAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": what}
    for code, what in {
        400: "Missing 'text', a field of the wrong type, a character no store can keep "
        "(NUL, a lone surrogate), or a body that cannot be read.",
        403: "The room is reserved for the agent or belongs to another user, or the "
        "token speaks for another user.",
        404: "No such agent.",
        413: "The body or the file is too large.",
        415: "Not form data or JSON.",
        503: "The message was stored but the model could not answer it.",
    }.items()
}


def message_request_body() -> dict[str, Any]:
    """The OpenAPI request body of the message routes: JSON or form data."""
    json_schema = MessageIn.model_json_schema(by_alias=True)
    form_schema = MessageForm.model_json_schema(by_alias=True)
    form_schema["properties"]["file"] = {"type": "string", "format": "binary"}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": json_schema},
            "multipart/form-data": {"schema": form_schema},
            "application/x-www-form-urlencoded": {"schema": json_schema},
        },
    }


def contents(runtime: AgentRuntime, responses: Iterable[Memory]) -> list[dict[str, Any]]:
    """The ElizaOS direct client's answer: one content object per message sent.

    Each has ``text``, ``action`` (the first action, as ElizaOS v0 clients read it),
    ``actions``, ``user`` (the agent's name), ``id`` and the content's other fields
    in camelCase.
    """
    found = []
    for memory in responses:
        content = memory.content.model_dump(mode="json", by_alias=True, exclude_none=True)
        actions = memory.content.actions
        content["action"] = actions[0] if actions else None
        content["user"] = runtime.character.name
        content["id"] = memory.id
        found.append(content)
    return found


def agent_summary(runtime: AgentRuntime) -> dict[str, Any]:
    """An agent's id, name and username, and the model that answers."""
    character = runtime.character
    try:
        model = runtime.model().primary
    except CarrierError:  # no large model configured
        model = None
    return {
        "id": runtime.agent_id,
        "name": character.name,
        "username": character.username,
        "model": model.name if model is not None else None,
        "smallModel": bool(getattr(model, "small", False)),
    }


def agent_detail(runtime: AgentRuntime) -> dict[str, Any]:
    """An agent's public character fields."""
    character = runtime.character
    return {
        **agent_summary(runtime),
        "bio": list(character.bio),
        "topics": list(character.topics),
        "adjectives": list(character.adjectives),
        "plugins": list(character.plugins),
    }


def memory_out(memory: Memory) -> dict[str, Any]:
    """A message for the wire: its id, sender, room, time and what it says (text,
    files, the message it answers, its source), never its thought or metadata."""
    content = memory.content
    return {
        "id": memory.id,
        "entityId": memory.entity_id,
        "roomId": memory.room_id,
        "createdAt": memory.created_at,
        "content": {
            "text": content.text,
            "attachments": [attachment_out(a) for a in content.attachments],
            "inReplyTo": content.in_reply_to,
            "source": content.source,
        },
    }


#: The fields of an attachment a reader sees (the model's own extra fields stay out).
_ATTACHMENT_FIELDS = frozenset({"id", "url", "title", "source", "content_type", "text", "size"})


def attachment_out(attachment: Attachment) -> dict[str, Any]:
    """A message's file or link for the wire (camelCase, without unset fields)."""
    return attachment.model_dump(
        mode="json", by_alias=True, include=set(_ATTACHMENT_FIELDS), exclude_none=True
    )
