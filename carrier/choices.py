"""Choices (docs/tasks.md): a task or an action asks a room to choose between options
(ElizaOS's ``AWAITING_CHOICE``); the next matching answer from an allowed user
resolves it.

An open choice is an entry of the store's cache, ``choice:{agent_id}:{room_id}:{id}``,
counted in ``choices-open:{agent_id}:{room_id}``. Every new message of a room with open
choices (one point lookup when it has none) is checked against them: a message
from an allowed user whose text is an option (any case) or its number resolves the
oldest matching choice — replaced with ``compare_and_set_cache``, so once — and, when
the choice names a task worker, schedules a one-shot task for it with the option in
its payload (``choice``, ``chosen_by``). Another user's answer changes nothing.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from carrier.errors import InputError
from carrier.types import CarrierModel, Content, Memory, new_id, now

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = ["Choice", "Choices"]

logger = logging.getLogger("carrier.choices")

#: ``Choices.answer``'s ``opened`` when the caller did not read the marker.
_UNREAD: Any = object()


class Choice(CarrierModel):
    """A question put to a room, and its answer once given."""

    id: str = Field(default_factory=new_id)
    agent_id: str
    room_id: str
    question: str
    options: list[str]
    #: User ids whose answer counts; empty: anyone in the room.
    allowed: list[str] = Field(default_factory=list)
    #: A task worker to run with the answer (``payload`` plus ``choice``, ``chosen_by``).
    worker: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=now)
    expires_at: float | None = None
    chosen: str | None = None
    chosen_by: str | None = None
    chosen_at: float | None = None

    def match(self, text: str) -> str | None:
        """The option ``text`` names (its text in any case, or its number), or ``None``."""
        answer = text.strip().rstrip(".!").strip().lower()
        for number, option in enumerate(self.options, 1):
            if answer in (option.lower(), str(number)):
                return option
        return None


class Choices:
    """An agent's open choices: ``runtime.choices``."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    def _prefix(self, room_id: str) -> str:
        return f"choice:{self._runtime.agent_id}:{room_id}:"

    async def ask(
        self,
        room_id: str,
        question: str,
        options: Sequence[str],
        *,
        allowed: Sequence[str] = (),
        worker: str | None = None,
        payload: dict[str, Any] | None = None,
        expires_s: float | None = None,
        choice_id: str | None = None,
    ) -> Choice:
        """Ask ``room_id`` to choose; the question and the numbered options are sent
        to the room (``send_message``). ``choice_id`` makes asking idempotent.

        Raises:
            InputError: Fewer than two options, or a worker that is not registered.
        """
        runtime = self._runtime
        if len(options) < 2:
            raise InputError("A choice needs at least two options.")
        if worker is not None:
            runtime.host.task_workers.entry(worker)
        choice = Choice(
            agent_id=runtime.agent_id,
            room_id=room_id,
            question=question,
            options=list(options),
            allowed=list(allowed),
            worker=worker,
            payload=dict(payload or {}),
            expires_at=None if expires_s is None else now() + expires_s,
            **({"id": choice_id} if choice_id else {}),
        )
        key = self._prefix(room_id) + choice.id
        if await runtime.store.add_cache(key, choice.model_dump(mode="json")):
            await runtime.store.increment_cache(self.open_key(room_id))
            listed = "\n".join(f"{n}. {option}" for n, option in enumerate(options, 1))
            await runtime.send_message(
                room_id, Content(text=f"{question}\n{listed}", choice_id=choice.id)
            )
        return choice

    def open_key(self, room_id: str) -> str:
        """How many choices of the room were asked and not answered: one point lookup
        per message decides whether the room's choices need reading at all (the
        runtime reads it with the rest of a turn's reads, ``MemoryStore.read_turn``)."""
        return f"choices-open:{self._runtime.agent_id}:{room_id}"

    async def get(self, room_id: str, choice_id: str) -> Choice | None:
        found = await self._runtime.store.get_cache(self._prefix(room_id) + choice_id)
        return None if found is None else Choice.model_validate(found)

    async def list(self, room_id: str, *, open_only: bool = True) -> builtins.list[Choice]:
        """The room's choices (open ones only, by default), oldest first."""
        entries = await self._runtime.store.list_cache(self._prefix(room_id))
        found = [Choice.model_validate(value) for _, value in entries]
        if open_only:
            current = now()
            found = [
                c
                for c in found
                if c.chosen is None and (c.expires_at is None or c.expires_at > current)
            ]
        return sorted(found, key=lambda c: c.created_at)

    async def answer(self, message: Memory, *, opened: Any = _UNREAD) -> Choice | None:
        """Resolve the room's oldest open choice that ``message`` answers, if its sender
        may answer it; the resolved choice, or ``None``. ``opened``: the value of the
        room's :meth:`open_key` if it was read already (``None``: absent)."""
        if message.entity_id == self._runtime.agent_id or not message.content.text:
            return None
        if opened is _UNREAD:
            opened = await self._runtime.store.get_cache(self.open_key(message.room_id))
        if not opened:
            return None
        for choice in await self.list(message.room_id):
            if choice.allowed and message.entity_id not in choice.allowed:
                continue
            option = choice.match(message.content.text)
            if option is None:
                continue
            resolved = choice.model_copy(
                update={"chosen": option, "chosen_by": message.entity_id, "chosen_at": now()}
            )
            won = await self._runtime.store.compare_and_set_cache(
                self._prefix(choice.room_id) + choice.id,
                choice.model_dump(mode="json"),
                resolved.model_dump(mode="json"),
            )
            if not won:
                continue
            await self._runtime.store.increment_cache(self.open_key(choice.room_id), -1)
            logger.info("Choice %s: %s chose %r", choice.id, message.entity_id, option)
            if choice.worker is not None:
                await self._runtime.tasks.schedule(
                    f"choice {choice.id}",
                    worker=choice.worker,
                    room_id=choice.room_id,
                    payload={**choice.payload, "choice": option, "chosen_by": message.entity_id},
                    created_by=message.entity_id,
                    task_id=f"choice:{choice.id}",
                )
            return resolved
        return None
