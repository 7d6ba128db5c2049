"""Running the actions a model chose: lookup by name or simile, role checks,
argument validation, handler errors turned into results. Never raises."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from carrier.errors import ToolRetry
from carrier.types import ActionCall, ActionResult, EventType, Memory, Role, State

if TYPE_CHECKING:
    from carrier.protocols import Action, ActionSource
    from carrier.runtime import AgentRuntime

__all__ = ["ROLE_RANK", "ActionTable"]

logger = logging.getLogger("carrier.actions")

ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


class ActionTable:
    """The agent's actions by upper-cased name and simile: the registered ones, frozen
    at start, and those of its action sources (:class:`carrier.protocols.ActionSource`),
    looked up again only when a source's ``version`` changed."""

    def __init__(self, actions: Mapping[str, Action], sources: Sequence[ActionSource] = ()) -> None:
        self._registered = dict(actions)
        self.sources = tuple(sources)
        self._versions: list[int] = []
        self.by_name: dict[str, Action] = {}
        self._lookup: dict[str, Action] = {}
        self._build([source.version for source in self.sources])

    def _build(self, versions: list[int]) -> None:
        actions = dict(self._registered)
        for source in self.sources:
            try:
                dynamic = source.actions()
            except Exception:
                logger.exception("actions() of action source %r failed", source.name)
                continue
            for action in dynamic:
                taken = actions.get(action.name)
                if taken is not None and taken is not action:
                    logger.warning(
                        "Action source %r offers %r, a name already taken; it is skipped.",
                        source.name,
                        action.name,
                    )
                    continue
                actions[action.name] = action
        lookup: dict[str, Action] = {}
        for action in actions.values():
            for simile in action.similes:
                lookup.setdefault(simile.upper(), action)
        for name, action in actions.items():
            lookup[name.upper()] = action
        self.by_name, self._lookup, self._versions = actions, lookup, versions

    def refresh(self) -> None:
        """Take in what the sources changed since the last call (cheap when nothing did:
        one ``version`` read per source). The loop calls it before offering actions."""
        if self.sources:
            versions = [source.version for source in self.sources]
            if versions != self._versions:
                self._build(versions)

    def find(self, name: str) -> Action | None:
        return self._lookup.get(name.strip().upper())

    def __bool__(self) -> bool:
        return bool(self.by_name) or bool(self.sources)

    async def aclose(self) -> None:
        """Close every action source (the runtime is stopping); failures are logged."""
        for source in self.sources:
            try:
                await source.aclose()
            except Exception:
                logger.exception("aclose() of action source %r failed", source.name)

    async def offered(
        self, runtime: AgentRuntime, message: Memory, state: State, role: Role
    ) -> list[Action]:
        """Actions whose role requirement and ``validate`` pass for this message."""
        self.refresh()
        offered = []
        for action in self.by_name.values():
            if not _role_allows(action, role):
                continue
            try:
                if await action.validate(runtime, message, state):
                    offered.append(action)
            except Exception:
                logger.exception("validate() of action %r failed; not offered", action.name)
        return offered

    async def run(
        self,
        runtime: AgentRuntime,
        call: ActionCall,
        message: Memory,
        state: State,
        role: Role,
        *,
        idempotency_key: str | None = None,
        approved: bool = False,
    ) -> ActionResult:
        """Run one call; every failure becomes an unsuccessful ``ActionResult``.

        ``idempotency_key`` is in ``state.idempotency_key`` while the handler runs. A
        call that needs approval (``Action.needs_approval``) is stored as a pending
        approval instead (docs/approvals.md), unless ``approved``.
        """
        action = self.find(call.name)
        offered = {spec.name for spec in state.actions}
        if action is None or action.name not in offered:
            error = (
                f"The model chose action {call.name!r}, which is not offered here. "
                f"Offered actions: {', '.join(sorted(offered)) or 'none'}."
            )
            return await self._failed(runtime, message, call.name, error)
        if not _role_allows(action, role):
            error = (
                f"Action {action.name!r} needs the {action.required_role} role; the sender "
                f"is a {role}. Nothing was done."
            )
            return await self._failed(runtime, message, action.name, error, refused=True)
        arguments = None
        if action.parameters is not None:
            try:
                arguments = action.parameters.model_validate(call.arguments)
            except ValidationError as exc:
                details = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
                error = f"Invalid arguments for action {action.name!r}: {details}."
                return await self._failed(runtime, message, action.name, error, retry=True)
        await runtime.emit(
            EventType.ACTION_STARTED,
            message,
            action=action.name,
            call_id=call.id,
            arguments=call.arguments,
            idempotency_key=idempotency_key,
        )
        started = time.perf_counter()
        try:
            if not await action.validate(runtime, message, state):
                error = f"Action {action.name!r} does not apply to this message (validate failed)."
                return await self._failed(runtime, message, action.name, error, refused=True)
            if not approved and action.needs_approval(
                arguments, sender_id=message.entity_id, role=role
            ):
                key = idempotency_key or f"{message.id}:{call.id or action.name}"
                return await runtime.approvals.request(action, arguments, message, role, key)
            state.idempotency_key = idempotency_key
            try:
                result = await action.handler(runtime, message, state, arguments)
            finally:
                state.idempotency_key = None
        except ToolRetry as exc:
            return await self._failed(runtime, message, action.name, str(exc), retry=True)
        except Exception as exc:
            logger.exception("Action %r failed", action.name)
            error = f"Action {action.name!r} failed: {type(exc).__name__}: {exc}"
            return await self._failed(runtime, message, action.name, error)
        if result is None:
            result = ActionResult(name=action.name)
        duration = (time.perf_counter() - started) * 1000
        await runtime.emit(
            EventType.ACTION_COMPLETED,
            message,
            duration,
            action=action.name,
            success=result.success,
            text=result.text,
            error=result.error,
        )
        return result

    @staticmethod
    async def _failed(
        runtime: AgentRuntime,
        message: Memory,
        name: str,
        error: str,
        *,
        retry: bool = False,
        refused: bool = False,
    ) -> ActionResult:
        logger.warning("%s", error)
        await runtime.emit(
            EventType.ACTION_FAILED, message, action=name, error=error, refused=refused
        )
        await runtime.store.log(
            agent_id=runtime.agent_id,
            room_id=message.room_id,
            type="action_failed",
            body={"action": name, "error": error},
        )
        return ActionResult(
            name=name, success=False, error=error, continue_chain=retry, data={"refused": refused}
        )


def _role_allows(action: Action, role: Role) -> bool:
    required = action.required_role
    return required is None or ROLE_RANK[role] >= ROLE_RANK[required]
