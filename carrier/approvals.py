"""Durable human approval of actions (docs/approvals.md, DESIGN §9).

An action that declares ``requires_approval`` (or whose ``needs_approval`` predicate
says so) does not run when the model chooses it: :meth:`Approvals.request` stores a
pending :class:`Approval` in the store's cache under ``approval:{agent_id}:{id}``
(the action, its validated arguments, the call's idempotency key, room, requester,
who may approve, expiry and default outcome), and the notice that approval is
pending becomes the message's reply. The turn ends there.

:meth:`Approvals.decide` resolves it once — the pending entry is replaced with
``compare_and_set_cache``, so of two approvers (or an approver and the expiry) one
wins — and :meth:`Approvals.resume` continues the run: the action runs with the
call's original idempotency key (its outcome recorded under
``approval-act:{agent_id}:{id}``, never run twice), the model continues from its
result (or from the rejection), and what it says is stored as a new agent message
``"{approval_id}-{agent_id}"``. A resume cut off by a crash is finished by
:meth:`Approvals.recover` (the scheduler's sweep and ``recover_at_start`` call it).
"""

from __future__ import annotations

import builtins
import logging
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from carrier.errors import AccessError, ActionError, InputError
from carrier.steps import RECORD_TTL_S, Lease
from carrier.types import (
    ActionCall,
    ActionResult,
    CarrierModel,
    Content,
    Memory,
    Role,
    State,
    new_id,
    now,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from carrier.protocols import Action
    from carrier.runtime import AgentRuntime

__all__ = ["Approval", "ApprovalStatus", "Approvals"]

logger = logging.getLogger("carrier.approvals")

_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}
#: A chat message that decides an approval: "approve", "reject 1b9e too risky", ...
_DECISION = re.compile(
    r"^\s*/?(approve|reject)\b[\s:,-]*([0-9a-f][0-9a-f-]{5,35}\b)?[\s:,-]*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Approval(CarrierModel):
    """One action call waiting for (or resolved by) a person's decision."""

    id: str
    agent_id: str
    action: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    message_id: str
    room_id: str
    requester_id: str
    requester_role: Role = Role.MEMBER
    approver_role: Role = Role.ADMIN
    created_at: float = Field(default_factory=now)
    expires_at: float | None = None
    default: ApprovalStatus = ApprovalStatus.REJECTED
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str = ""
    expired: bool = False
    #: The chat message that decided it (a reply in the room), if one did.
    decided_via: str | None = None
    #: The resumed run finished (the action ran or was refused, the model answered).
    done: bool = False

    @property
    def response_id(self) -> str:
        """The id of the agent's message after the decision."""
        return f"{self.id}-{self.agent_id}"


class Approvals:
    """An agent's approvals, in its store: ``runtime.approvals``."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    def _key(self, approval_id: str) -> str:
        return f"approval:{self._runtime.agent_id}:{approval_id}"

    # ---- requesting ----------------------------------------------------------------

    async def request(
        self,
        action: Action,
        arguments: BaseModel | None,
        message: Memory,
        role: Role,
        idempotency_key: str,
    ) -> ActionResult:
        """Store a pending approval for this call (once per idempotency key) and
        return the result that ends the turn: its notice is the message's reply."""
        runtime = self._runtime
        approval_id = new_id(f"approval:{runtime.agent_id}:{idempotency_key}")
        expires = action.approval_expires_s
        approval = Approval(
            id=approval_id,
            agent_id=runtime.agent_id,
            action=action.name,
            arguments={} if arguments is None else arguments.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            message_id=message.id,
            room_id=message.room_id,
            requester_id=message.entity_id,
            requester_role=role,
            approver_role=action.approver_role,
            expires_at=None if expires is None else now() + expires,
            default=ApprovalStatus(
                "approved" if action.approval_default == "approve" else "rejected"
            ),
        )
        await runtime.store.add_cache(self._key(approval_id), approval.model_dump(mode="json"))
        notice = (
            f"Action {action.name} needs approval by a user with the "
            f"{approval.approver_role} role; it waits as approval {approval_id}."
        )
        logger.info("%s", notice)
        return ActionResult(
            name=action.name,
            success=False,
            text=notice,
            suppress_reply=True,
            messages=[
                Content(
                    text=notice,
                    actions=[action.name],
                    source=message.content.source,
                    in_reply_to=message.id,
                    approval_id=approval_id,
                )
            ],
            data={"approval_id": approval_id, "pending_approval": True},
        )

    # ---- reading -------------------------------------------------------------------

    async def get(self, approval_id: str) -> Approval | None:
        found = await self._runtime.store.get_cache(self._key(approval_id))
        return None if found is None else Approval.model_validate(found)

    async def list(self, *, pending_only: bool = True, limit: int = 1000) -> list[Approval]:
        """The agent's approvals (pending only, by default), oldest first."""
        entries = await self._runtime.store.list_cache(
            f"approval:{self._runtime.agent_id}:", limit=limit
        )
        found = [Approval.model_validate(value) for _, value in entries]
        if pending_only:
            found = [a for a in found if a.status is ApprovalStatus.PENDING]
        return sorted(found, key=lambda a: a.created_at)

    # ---- deciding ------------------------------------------------------------------

    async def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        by: str,
        role: Role,
        arguments: dict[str, Any] | None = None,
        reason: str = "",
        resume: bool = True,
        via: str | None = None,
    ) -> Approval:
        """Approve (with ``arguments`` replacing the call's, validated again) or reject
        a pending approval, as user ``by`` with ``role`` — which the caller takes from
        authenticated data, never from the request — then :meth:`resume` the run.

        Raises:
            AccessError: ``role`` is below the approval's approver role.
            ActionError: No such approval, or it is decided already or expired (its
                default applies).
            InputError: The edited arguments are invalid (it stays pending).
        """
        approval = await self.get(approval_id)
        if approval is None:
            raise ActionError(f"No approval {approval_id!r} for agent {self._runtime.agent_id}.")
        if _RANK[role] < _RANK[approval.approver_role]:
            raise AccessError(
                f"Approval {approval_id} needs the {approval.approver_role} role; {by!r} "
                f"has the {role} role. Nothing was decided."
            )
        if approval.status is not ApprovalStatus.PENDING:
            raise ActionError(
                f"Approval {approval_id} was {approval.status} by {approval.decided_by} already."
            )
        if approval.expires_at is not None and approval.expires_at <= now():
            settled = await self._settle(
                approval, approval.default, "expiry", "expired", expired=True
            )
            if settled is not None and resume:
                await self.resume(settled)
            raise ActionError(
                f"Approval {approval_id} expired; its default ({approval.default}) applied."
            )
        update: dict[str, Any] = {} if via is None else {"via": via}
        if approve and arguments is not None:
            update["arguments"] = self._validated(approval, arguments)
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        decided = await self._settle(approval, status, by, reason, **update)
        if decided is None:
            raise ActionError(f"Approval {approval_id} was decided by someone else meanwhile.")
        if resume:
            await self.resume(decided)
            return await self.get(approval_id) or decided
        return decided

    def _validated(self, approval: Approval, arguments: dict[str, Any]) -> dict[str, Any]:
        action = self._runtime.actions.find(approval.action)
        if action is None:
            raise ActionError(f"Action {approval.action!r} is no longer available.")
        if action.parameters is None:
            return dict(arguments)
        try:
            return action.parameters.model_validate(arguments).model_dump(mode="json")
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise InputError(
                f"The edited arguments of approval {approval.id} are invalid ({details}); "
                f"it stays pending."
            ) from None

    async def _settle(
        self,
        approval: Approval,
        status: ApprovalStatus,
        by: str,
        reason: str,
        *,
        expired: bool = False,
        arguments: dict[str, Any] | None = None,
        via: str | None = None,
    ) -> Approval | None:
        """Replace the pending entry with the decision; ``None`` if another won."""
        decided = approval.model_copy(
            update={
                "status": status,
                "decided_by": by,
                "decided_at": now(),
                "reason": reason,
                "expired": expired,
                "decided_via": via,
                **({} if arguments is None else {"arguments": arguments}),
            }
        )
        won = await self._runtime.store.compare_and_set_cache(
            self._key(approval.id),
            approval.model_dump(mode="json"),
            decided.model_dump(mode="json"),
        )
        return decided if won else None

    async def from_message(self, message: Memory, role: Role) -> str | None:
        """Decide an approval from a chat message — ``approve [ID]`` or ``reject [ID]
        [reason]``, naming the approval, replying to its notice, or alone in a room with
        one pending approval — with ``role``, the sender's role the client set from
        authenticated data. A platform role holds in its room only, so only an OWNER
        decides another room's approval. Returns the text to answer the message with,
        or ``None`` when the message decides nothing (the loop goes on as usual)."""
        found = _DECISION.match(message.content.text or "")
        if found is None:
            return None
        verb, given, reason = found.group(1).lower(), found.group(2), found.group(3).strip()
        approval = await self._named(message, given)
        if approval is None:
            return None
        if approval.room_id != message.room_id and role is not Role.OWNER:
            return None
        if approval.decided_via == message.id:  # this message decided it: a replay
            await self.resume(approval)
            return f"Approval {approval.id}: {approval.status} by {approval.decided_by}."
        try:
            decided = await self.decide(
                approval.id,
                approve=verb == "approve",
                by=message.entity_id,
                role=role,
                reason=reason,
                via=message.id,
            )
        except (ActionError, InputError) as exc:  # AccessError included
            return str(exc)
        return f"Approval {decided.id}: {decided.status} by {decided.decided_by}."

    async def _named(self, message: Memory, given: str | None) -> Approval | None:
        if given:
            matches = [a for a in await self.list(pending_only=False) if a.id.startswith(given)]
            return matches[0] if len(matches) == 1 else None
        replied = message.content.in_reply_to
        if replied:
            notice = await self._runtime.store.get_memory(replied)
            extra = notice.content.model_extra if notice is not None else None
            if extra and isinstance(extra.get("approval_id"), str):
                return await self.get(extra["approval_id"])
        pending = [a for a in await self.list() if a.room_id == message.room_id]
        return pending[0] if len(pending) == 1 else None

    async def expire_due(self) -> builtins.list[Approval]:
        """Apply the default outcome of every expired pending approval, and resume."""
        settled = []
        for approval in await self.list():
            if approval.expires_at is not None and approval.expires_at <= now():
                decided = await self._settle(
                    approval, approval.default, "expiry", "expired", expired=True
                )
                if decided is not None:
                    await self.resume(decided)
                    settled.append(decided)
        return settled

    async def recover(self) -> int:
        """Resume decided approvals whose run was cut off; expire due ones."""
        resumed = 0
        for approval in await self.list(pending_only=False):
            if approval.status is not ApprovalStatus.PENDING and not approval.done:
                resumed += await self.resume(approval)
        return resumed + len(await self.expire_due())

    # ---- resuming ------------------------------------------------------------------

    async def resume(self, approval: Approval) -> bool:
        """Continue the run of a decided approval, exactly once; ``False`` if another
        process is at it, it is done, or its message is gone."""
        runtime = self._runtime
        store = runtime.store
        if approval.done or approval.status is ApprovalStatus.PENDING:
            return False
        lease = Lease(
            store,
            f"approval-run:{runtime.agent_id}:{approval.id}",
            runtime.settings.lease_ttl_s,
        )
        if not await lease.acquire():
            return False
        try:
            current = await self.get(approval.id)
            if current is None or current.done:
                return False
            approval = current
            message = await store.get_memory(approval.message_id)
            room = await store.get_room(approval.room_id)
            if message is None or room is None:
                logger.warning("Approval %s: its message or room is gone", approval.id)
                await self._mark_done(approval)
                return False
            role = approval.requester_role
            state = await runtime.compose_state(message, room, role=role)
            result = await self._outcome(approval, message, state, role)
            # The continuation is a run of its own, keyed by the approval's id.
            follow = message.model_copy(update={"id": approval.id})
            state.action_results = [result]
            state.step = 1
            response = await runtime._model_step(
                follow, 0, runtime.compose_context(state), on_text=None, replay=True
            )
            contents, _ = await runtime.act(follow, state, response, role=role, replay=True)
            await runtime.remember(follow, contents)
            if contents and room.source in runtime.host.clients:
                from carrier.outbox import Deliveries

                await Deliveries(store, room.source, runtime.agent_id).add(
                    room.id, approval.response_id
                )
            await self._mark_done(approval)
            return True
        finally:
            await lease.release()

    async def _outcome(
        self, approval: Approval, message: Memory, state: State, role: Role
    ) -> ActionResult:
        store = self._runtime.store
        key = f"approval-act:{self._runtime.agent_id}:{approval.id}"
        recorded = await store.get_cache(key)
        if recorded is not None:
            return ActionResult.model_validate(recorded)
        if approval.status is ApprovalStatus.APPROVED:
            call = ActionCall(name=approval.action, arguments=approval.arguments)
            result = await self._runtime.actions.run(
                self._runtime,
                call,
                message,
                state,
                role,
                idempotency_key=approval.idempotency_key,
                approved=True,
            )
        else:
            why = "it expired" if approval.expired else f"{approval.decided_by} rejected it"
            result = ActionResult(
                name=approval.action,
                success=False,
                error=f"Action {approval.action} was not run: {why}"
                + (f" ({approval.reason})." if approval.reason else "."),
                data={"rejected": True},
            )
        await store.set_cache(key, result.model_dump(mode="json"), ttl_s=RECORD_TTL_S)
        return result

    async def _mark_done(self, approval: Approval) -> None:
        key = self._key(approval.id)
        current = await self._runtime.store.get_cache(key)
        if current is not None:
            done = {**current, "done": True}
            await self._runtime.store.compare_and_set_cache(key, current, done)
