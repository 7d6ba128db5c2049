"""``GET /agents/{agent_id}/approvals`` and ``POST .../approvals/{id}/approve|reject``.

The approver is the request's authenticated identity: its per-user token's user and
role (docs/approvals.md). Nothing in the body can name another approver or raise the
role; the shared token and tokenless loopback requests act as MEMBER and approve
nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from carrier.approvals import Approval
from carrier.errors import AccessError, ActionError
from carrier.runtime import AgentRuntime
from carrier.types import Role
from carrier_plugin_http import schemas
from carrier_plugin_http.deps import Agent, Caller
from carrier_plugin_http.security import Identity

__all__ = ["router"]

router = APIRouter(tags=["approvals"])

_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error},
    403: {"model": schemas.Error},
    404: {"model": schemas.Error},
    409: {"model": schemas.Error},
}
ApprovalId = Annotated[str, Path(max_length=200, description="The approval's id.")]


class ApprovalOut(BaseModel):
    """One approval: the action call, who asked, who may decide, and the decision."""

    id: str
    action: str
    arguments: dict[str, Any]
    roomId: str  # noqa: N815 - the JSON field's name
    requesterId: str  # noqa: N815
    approverRole: str  # noqa: N815
    status: str
    expiresAt: float | None  # noqa: N815
    decidedBy: str | None  # noqa: N815
    reason: str
    done: bool
    responseId: str  # noqa: N815
    responseText: str | None = None  # noqa: N815


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]


class ApproveBody(BaseModel):
    """Approve as is, or with edited arguments (validated again)."""

    arguments: dict[str, Any] | None = None


class RejectBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


def _out(approval: Approval, text: str | None = None) -> dict[str, Any]:
    return {
        "id": approval.id,
        "action": approval.action,
        "arguments": approval.arguments,
        "roomId": approval.room_id,
        "requesterId": approval.requester_id,
        "approverRole": approval.approver_role.value,
        "status": approval.status.value,
        "expiresAt": approval.expires_at,
        "decidedBy": approval.decided_by,
        "reason": approval.reason,
        "done": approval.done,
        "responseId": approval.response_id,
        "responseText": text,
    }


@router.get(
    "/agents/{agent_id}/approvals",
    response_model=ApprovalList,
    responses={404: {"model": schemas.Error}},
)
async def list_approvals(
    runtime: Agent,
    identity: Caller,
    all: Annotated[bool, Query(description="Decided approvals too.")] = False,
) -> dict[str, Any]:
    """Approvals waiting for a decision: every one for an ADMIN or OWNER token, a
    member's own requests otherwise."""
    found = await runtime.approvals.list(pending_only=not all)
    if _RANK[identity.role] < _RANK[Role.ADMIN]:
        found = [a for a in found if a.requester_id == identity.user_id]
    return {"approvals": [_out(a) for a in found]}


async def _decide(
    runtime: AgentRuntime,
    identity: Identity,
    approval_id: str,
    *,
    approve: bool,
    arguments: dict[str, Any] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    if await runtime.approvals.get(approval_id) is None:
        raise HTTPException(404, f"No approval {approval_id!r} for this agent.")
    try:
        decided = await runtime.approvals.decide(
            approval_id,
            approve=approve,
            by=identity.user_id or "api",
            role=identity.role,
            arguments=arguments,
            reason=reason,
        )
    except AccessError as exc:
        raise HTTPException(403, str(exc)) from None
    except ActionError as exc:
        raise HTTPException(409, str(exc)) from None
    answer = await runtime.store.get_memory(decided.response_id)
    return _out(decided, answer.content.text if answer is not None else None)


@router.post(
    "/agents/{agent_id}/approvals/{approval_id}/approve",
    response_model=ApprovalOut,
    responses=_ERRORS,
)
async def approve(
    runtime: Agent, identity: Caller, approval_id: ApprovalId, body: ApproveBody | None = None
) -> dict[str, Any]:
    """Approve: the action runs once, with the call's idempotency key, and the model
    continues; ``responseText`` is what the agent said then. Edited ``arguments`` that
    fail validation are refused (400) and the approval stays pending."""
    arguments = body.arguments if body is not None else None
    return await _decide(runtime, identity, approval_id, approve=True, arguments=arguments)


@router.post(
    "/agents/{agent_id}/approvals/{approval_id}/reject",
    response_model=ApprovalOut,
    responses=_ERRORS,
)
async def reject(
    runtime: Agent, identity: Caller, approval_id: ApprovalId, body: RejectBody | None = None
) -> dict[str, Any]:
    """Reject with a reason; the model continues from the rejection."""
    reason = body.reason if body is not None else ""
    return await _decide(runtime, identity, approval_id, approve=False, reason=reason)
