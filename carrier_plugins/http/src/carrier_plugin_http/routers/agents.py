"""``GET /me``, ``GET /agents``, ``GET /agents/{agent_id}`` and the caller's rooms with
an agent (``GET /agents/{agent_id}/rooms``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from carrier_plugin_http import schemas
from carrier_plugin_http.deps import Agent, Caller, Hub, Reader
from carrier_plugin_http.room_list import list_rooms

__all__ = ["router"]

router = APIRouter(tags=["agents"])


@router.get("/me", response_model=schemas.Me)
async def me(identity: Caller) -> dict[str, Any]:
    """The user this request's token speaks for (if it is a per-user token) and the role
    its messages carry. The token itself is never shown."""
    return {"userId": identity.user_id, "role": identity.role.value}


@router.get("/agents", response_model=schemas.AgentList)
async def agents(identity: Caller, hub: Hub) -> dict[str, Any]:
    return {"agents": [schemas.agent_summary(r) for r in hub.runtimes]}


@router.get(
    "/agents/{agent_id}",
    response_model=schemas.AgentDetail,
    responses={404: {"model": schemas.Error}},
)
async def agent_detail(runtime: Agent) -> dict[str, Any]:
    return schemas.agent_detail(runtime)


@router.get(
    "/agents/{agent_id}/rooms",
    summary="The caller's rooms with the agent (the page's earlier conversations), "
    "each with a title from the caller's own first message, most recently active first.",
    response_model=schemas.RoomList,
    responses={404: {"model": schemas.Error}},
)
async def rooms(runtime: Agent, reader: Reader, hub: Hub) -> dict[str, Any]:
    return {"rooms": await list_rooms(runtime, hub, reader)}
