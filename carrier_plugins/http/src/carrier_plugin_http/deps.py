"""FastAPI dependencies shared by the routers: who is calling (token, rate limit),
which agent, and which user and room a request may act as and use.

``create_app`` puts the hub, the settings and the rate limiter in ``app.state``; the
dependencies read them from there, so routers hold no closures.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from carrier.runtime import AgentRuntime
from carrier.types import IncomingMessage
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.security import Identity, RateLimiter, authenticate, retry_after
from carrier_plugin_http.settings import HttpSettings

__all__ = [
    "Agent",
    "Caller",
    "Hub",
    "Reader",
    "Settings",
    "check_room_for_post",
    "check_room_for_read",
    "default_room",
    "speaker",
]

_bearer = HTTPBearer(auto_error=False, description="CARRIER_HTTP_TOKEN or a per-user token.")


def _hub(request: Request) -> AgentHub:
    hub: AgentHub = request.app.state.hub
    return hub


def _settings(request: Request) -> HttpSettings:
    settings: HttpSettings = request.app.state.settings
    return settings


Hub = Annotated[AgentHub, Depends(_hub)]
Settings = Annotated[HttpSettings, Depends(_settings)]


def _limit(request: Request, client: str) -> None:
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.acquire(client)
    if wait:
        raise HTTPException(
            429,
            f"Too many requests; try again in {retry_after(wait)} s.",
            headers={"Retry-After": retry_after(wait)},
        )


def _identify(
    request: Request,
    settings: Settings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    """Authenticate and rate-limit the request (401 and 429 come from here)."""
    client = request.client.host if request.client else "unknown"
    try:
        identity = authenticate(request.headers.get("authorization"), client, settings)
    except PermissionError as exc:
        _limit(request, client)  # guessing tokens is rate limited too
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    _limit(request, identity.client)
    return identity


Caller = Annotated[Identity, Depends(_identify)]


def _agent(
    agent_id: Annotated[
        str, Path(description="The agent's id or name (any case).", max_length=200)
    ],
    hub: Hub,
    identity: Caller,  # authenticated before anything about agents is told
) -> AgentRuntime:
    runtime = hub.find(agent_id)
    if runtime is None:
        raise HTTPException(404, f"No agent with the id or name {agent_id!r}.")
    return runtime


Agent = Annotated[AgentRuntime, Depends(_agent)]


def speaker(hub: AgentHub, identity: Identity, requested: str | None) -> str:
    """The user a request acts as: its per-user token's, else the ``userId`` it names
    (default ``user``). Nobody acts as an agent.

    Raises:
        HTTPException: 403 for another user than the token's, or an agent's id.
    """
    if identity.user_id is not None and requested not in (None, identity.user_id):
        raise HTTPException(403, f"Your token speaks for user {identity.user_id!r} only.")
    user_id = identity.user_id or requested or "user"
    if hub.is_agent(user_id):
        raise HTTPException(
            403, f"{user_id!r} is an agent's id; a request cannot speak or read as an agent."
        )
    return user_id


def _reader(
    hub: Hub,
    identity: Caller,
    user_id: Annotated[
        str | None, Query(alias="userId", max_length=200, description="Reader; default 'user'.")
    ] = None,
) -> str:
    return speaker(hub, identity, user_id)


Reader = Annotated[str, Depends(_reader)]


async def check_room_for_read(
    hub: AgentHub, runtime: AgentRuntime, room_id: str, reader: str
) -> None:
    """Refuse a reserved room, or one the reader does not take part in (403).

    Routes call it after FastAPI validated their parameters, so a bad query is a 400
    whatever the room.
    """
    if hub.is_reserved_room(room_id):
        raise HTTPException(403, _reserved(room_id))
    if await runtime.store.get_participant(room_id, reader) is None:
        raise HTTPException(403, f"User {reader!r} does not take part in room {room_id!r}.")


def default_room(runtime: AgentRuntime, user_id: str) -> str:
    """The user's own room with the agent (the room of a message without ``roomId``)."""
    return runtime.room_id_for(IncomingMessage(user_id=user_id))


async def check_room_for_post(
    hub: AgentHub, runtime: AgentRuntime, room_id: str, user_id: str
) -> None:
    """Refuse, before any file is written, a room the user may not post into: a
    reserved room, another user's default room, or a direct room with another user.

    The runtime checks again when it stores the message (``AccessError``), atomically:
    this early check only spares work; of two users racing for a new room, the
    runtime lets one in.
    """
    if hub.is_reserved_room(room_id):
        raise HTTPException(403, _reserved(room_id))
    prefix = default_room(runtime, "")  # every user's default room starts so
    if room_id.startswith(prefix) and room_id != default_room(runtime, user_id):
        raise HTTPException(
            403,
            f"Room {room_id!r} is another user's default room. Send the message without "
            f"a room id to talk in your own.",
        )
    store = runtime.store
    room = await store.get_room(room_id)
    if room is None or not room.direct or room.owner_id == user_id:
        return  # new (the runtime creates it), a group, or the user's own
    if await store.get_participant(room_id, user_id) is None:
        raise HTTPException(
            403,
            f"Room {room_id!r} is a direct conversation with another user; nobody else can "
            f"join it. Send the message without a room id, or to a room of your own.",
        )


def _reserved(room_id: str) -> str:
    return (
        f"Room {room_id!r} is reserved for the agent itself; users can neither post into "
        f"nor read it. Send messages without a room id, or to a room of your own."
    )
