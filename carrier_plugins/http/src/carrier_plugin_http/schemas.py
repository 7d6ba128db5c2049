"""Response models (for the OpenAPI schema) and the functions that fill them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from carrier.errors import InputError, StoreError
from carrier_plugin_http.messages import MessageForm, MessageIn

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory

__all__ = [
    "MESSAGE_ERRORS",
    "AgentDetail",
    "AgentList",
    "AgentSummary",
    "ContentOut",
    "Error",
    "Me",
    "MemoryOut",
    "MemoryPage",
    "Status",
    "agent_detail",
    "agent_summary",
    "contents",
    "failure",
    "memory_out",
    "message_request_body",
]


class Error(BaseModel):
    """Every error answer."""

    error: str


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


class Me(BaseModel):
    """``GET /me``: the user a per-user token speaks for (``null`` for the shared token
    or none: then the request names its user)."""

    userId: str | None  # noqa: N815 - the JSON field's name


class AgentList(BaseModel):
    """``GET /agents``."""

    agents: list[AgentSummary]


class AgentDetail(AgentSummary):
    """``GET /agents/{agent_id}``: the character's public fields (never settings or secrets)."""

    bio: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)


class MemoryOut(BaseModel):
    """A stored message (camelCase, without its embedding)."""

    model_config = ConfigDict(extra="allow")

    id: str
    entityId: str  # noqa: N815 - the wire name
    roomId: str  # noqa: N815
    createdAt: float  # noqa: N815
    content: dict[str, Any]


class MemoryPage(BaseModel):
    """A page of a room's memories, oldest first; pass ``nextBefore`` as ``before``."""

    roomId: str  # noqa: N815
    memories: list[MemoryOut]
    nextBefore: float | None = None  # noqa: N815


class Status(BaseModel):
    """Health and readiness."""

    model_config = ConfigDict(extra="allow")

    status: str


MESSAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": what}
    for code, what in {
        400: "Missing 'text', a field of the wrong type, or a body that cannot be read.",
        403: "The room belongs to other users, or the token speaks for another user.",
        404: "No such agent.",
        413: "The body or the file is too large.",
        415: "Not form data or JSON.",
        503: "The message was stored but the model could not answer it.",
    }.items()
}


def failure(exc: Exception) -> tuple[int, str]:
    """The HTTP status and error text for a message the runtime could not take:
    refused input is 400, a failing memory store 503, anything else 500."""
    if isinstance(exc, InputError):
        return 400, str(exc)
    if isinstance(exc, StoreError):
        return 503, f"The memory store failed: {exc}"
    return 500, f"{type(exc).__name__}: {exc}"


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
    """An agent's id, name and username."""
    character = runtime.character
    return {"id": runtime.agent_id, "name": character.name, "username": character.username}


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
    """A memory for the wire, without its embedding."""
    return memory.model_dump(mode="json", by_alias=True, exclude={"embedding"})
