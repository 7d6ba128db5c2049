"""A message's run from end to end, exactly once (DESIGN §8): ``answer`` (every stage up
to the stored reply), ``finish`` (the evaluators, then the run's release),
``handle_message`` (both), ``recover`` and ``stored_reply``.

A run holds a lease in the store (``carrier.steps``) from before the first model call
until its evaluators are done, so two processes never handle one message at once; a
run cut off by a crash leaves its lease, which ``recover`` finds once it expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from carrier.errors import ConfigurationError, ModelError, StoreError
from carrier.lookahead import next_turn_state, prefix_request
from carrier.protocols import Model
from carrier.stages import LoopStages, TextCallback
from carrier.steps import Lease
from carrier.types import (
    EventType,
    IncomingMessage,
    Memory,
    ModelClass,
    ModelRequest,
    Reply,
    Role,
    Room,
    State,
)

__all__ = ["Runs"]

logger = logging.getLogger("carrier.runtime")

#: What a client sees when a message could not be answered; details go to the log.
INTERNAL_ERROR = "The agent failed while answering this message; it stays stored for recovery."


@dataclass
class _Pending:
    """What ``finish`` still has to do for a reply."""

    room: Room
    role: Role
    lease: Lease | None
    state: State | None  # None: compose it again (recovered evaluations)
    evaluate: bool = True  # False when the agent chose not to respond at all


class Runs(LoopStages):
    """The entry points of a message's run; the base of ``AgentRuntime``."""

    _warm_up: bool
    _prefills: set[asyncio.Task[None]]

    @abstractmethod
    async def handle(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Handle a message through the executor."""

    async def handle_message(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Run every stage for one message, evaluators included (:meth:`answer`, then
        :meth:`finish`). Executors call it, or the two halves, one per room at a time.

        Raises only if the message could not be stored (``AccessError`` when the
        sender may not use the room); after that, every failure becomes
        ``Reply.error`` and the message stays unanswered for :meth:`recover`.
        """
        return await self.finish(await self.answer(incoming, on_text=on_text))

    async def answer(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Every stage up to the stored reply. The evaluators wait for :meth:`finish`,
        which the caller must await (``reply.finishing`` says whether there is any)."""
        started = time.perf_counter()
        message = self.receive(incoming)
        await self.emit(
            EventType.RUN_STARTED,
            message,
            source=incoming.source,
            agent_name=self.character.name,
            room_type=incoming.room_type.value,
            role=incoming.role.value,
            text=message.content.text,
            trace_context=incoming.trace_context or None,
        )
        room = await self.connect(message, incoming)
        recording = self.settings.record_steps
        lease = self._steps.lease(message.id) if recording else None
        # a new message is leased, and its turn read, in the same write
        message, fresh, reads = await self.store_message(message, lease=lease)
        if reads is not None:  # an answer to a choice put to the room (carrier.choices)
            choices = self._runtime.choices
            try:
                await choices.answer(message, opened=reads.cache.get(choices.open_key(room.id)))
            except StoreError as exc:
                logger.warning("Message %s: answering a choice failed: %s", message.id, exc)
            except BaseException:  # the lease stays, unrenewed: recovery finishes the run
                if lease is not None:
                    await lease.abandon()
                raise
        if not fresh:
            previous = await self._answer_to(message)
            if previous is not None:
                duplicate = previous.model_copy(update={"duplicate": True})
                if recording and await self._steps.in_progress(message.id):
                    # answered, but its evaluators were cut off: finish runs them
                    claim = self._steps.lease(message.id)
                    if await claim.acquire():
                        pending = _Pending(
                            room, incoming.role, claim, None, evaluate=not previous.ignored
                        )
                        self._pend(duplicate, pending)
                await self.emit(
                    EventType.RUN_ENDED,
                    message,
                    (time.perf_counter() - started) * 1000,
                    responses=len(duplicate.responses),
                    ignored=duplicate.ignored,
                    duplicate=True,
                )
                return duplicate
        if lease is not None and not fresh and not await lease.acquire():
            logger.info("Message %s is being handled by another process", message.id)
            await self.emit(
                EventType.RUN_ENDED,
                message,
                (time.perf_counter() - started) * 1000,
                responses=0,
                ignored=False,
                in_progress=True,
            )
            return Reply(message=message, duplicate=not fresh, in_progress=True)
        try:
            reply = await self.respond(
                message,
                room,
                role=incoming.role,
                on_text=on_text,
                replay=not fresh,
                release=None if self._evaluators else lease,  # nothing runs after the reply
                reads=reads,
            )
        except (ModelError, StoreError, ConfigurationError) as exc:
            logger.info("Message %s was stored but not answered: %s", message.id, exc)
            await self.emit(EventType.RUN_FAILED, message, error=str(exc))
            await _release(lease)
            return Reply(message=message, error=str(exc))
        except Exception as exc:  # a bug in a plugin or here must not stop the runtime
            logger.exception("Message %s was stored but handling it failed", message.id)
            await self.emit(EventType.RUN_FAILED, message, error=f"{type(exc).__name__}: {exc}")
            await _release(lease)
            return Reply(message=message, error=INTERNAL_ERROR)
        except BaseException:  # cancelled: the lease stays, recovery finishes the run
            if lease is not None:
                await lease.abandon()
            raise
        state = reply._pending
        self._pend(reply, _Pending(room, incoming.role, lease, state, evaluate=state is not None))
        await self.emit(
            EventType.RUN_ENDED,
            message,
            (time.perf_counter() - started) * 1000,
            responses=len(reply.responses),
            ignored=reply.ignored,
        )
        return reply

    @staticmethod
    def _pend(reply: Reply, pending: _Pending) -> None:
        reply._pending = pending
        reply._finished = asyncio.Event()

    async def finish(self, reply: Reply) -> Reply:
        """Run the evaluators of an answered message (one room at a time, like the
        answer), record that they ran, and release the run. Does nothing twice."""
        pending = reply._pending
        if not isinstance(pending, _Pending):
            reply._pending = None
            return reply
        reply._pending = None
        try:
            if pending.evaluate and self._evaluators:
                state = pending.state
                if state is None:
                    state = await self.compose_state(reply.message, pending.room, role=pending.role)
                reply.evaluator_results = await self.evaluate(reply.message, state, reply.responses)
        except BaseException:
            if pending.lease is not None:
                await pending.lease.abandon()
            raise
        finally:
            reply._finished.set()
        await _release(pending.lease)
        if pending.state is not None and reply.responses:
            self._prefill_next(pending.state, reply.responses)
        return reply

    def _prefill_next(self, state: State, responses: list[Memory]) -> None:
        """Start the prefill of the room's next prefix (:mod:`carrier.lookahead`) when
        the large model has one and the runtime warms its models."""
        chain = self._chains.get(ModelClass.LARGE)
        limit = self._history_limit()
        if not self._warm_up or chain is None or limit <= 0:
            return
        model = chain.primary
        if type(model).prefill is Model.prefill:
            return
        try:
            prefix = prefix_request(self.compose_context(next_turn_state(state, responses, limit)))
        except Exception:  # the next message composes its own request anyway
            logger.exception("Composing the next prefix of room %s failed", state.room.id)
            return
        task = asyncio.create_task(_prefill(model, prefix))
        self._prefills.add(task)
        task.add_done_callback(self._prefills.discard)

    async def stored_reply(self, message_id: str) -> Reply | None:
        """The stored outcome of a message handled here or by another process.

        Returns ``None`` if the message is not stored; a ``Reply`` without
        responses if it is stored but not answered yet; otherwise its stored
        responses (``ignored`` when the agent chose not to answer).
        """
        return (await self.stored_replies([message_id]))[message_id]

    async def stored_replies(self, message_ids: Sequence[str]) -> dict[str, Reply | None]:
        """:meth:`stored_reply` of each of ``message_ids``, in one read for them all
        (and one more for each that has more than a few responses)."""
        replies: dict[str, Reply | None] = {}
        for message_id, (message, responses) in (await self._stored(message_ids)).items():
            if message is None:
                replies[message_id] = None
            else:
                replies[message_id] = _reply_of(message, responses) or Reply(message=message)
        return replies

    async def _answer_to(self, message: Memory) -> Reply | None:
        _, responses = (await self._stored([message.id]))[message.id]
        return _reply_of(message, responses)

    async def _stored(
        self, message_ids: Sequence[str]
    ) -> dict[str, tuple[Memory | None, list[Memory]]]:
        """Each message and its responses ("{id}-{agent}", then "-1", "-2", ...): the
        first few of every one in one read, then a few more at a time for any that has
        that many."""
        stems = {i: f"{i}-{self.agent_id}" for i in dict.fromkeys(message_ids)}
        first = [_response_id(s, n) for s in stems.values() for n in range(_RESPONSES_READ)]
        found = {m.id: m for m in await self.store.get_memories_by_id([*stems, *first])}
        stored: dict[str, tuple[Memory | None, list[Memory]]] = {}
        for message_id, stem in stems.items():
            responses: list[Memory] = []
            read = _RESPONSES_READ  # this message's responses looked for so far
            while True:
                index = len(responses)
                if index == read:  # every one looked for was there: a few more
                    batch = [_response_id(stem, index + n) for n in range(_RESPONSES_READ)]
                    found.update((m.id, m) for m in await self.store.get_memories_by_id(batch))
                    read += _RESPONSES_READ
                response = found.get(_response_id(stem, index))
                if response is None:
                    break
                responses.append(response)
            stored[message_id] = (found.get(message_id), responses)
        return stored

    async def recover(self, *, limit: int = 1000, in_process: bool = False) -> list[Reply]:
        """Finish what a crash cut off, once each, in order: runs whose lease was left
        behind (their process is gone, or it expired; only their evaluators when the
        reply was stored), then messages stored but never answered. Safe to call from
        many processes at once: each message's lease lets one of them handle it.

        Through the executor, unless ``in_process`` (every stage here, one message at
        a time: what a command does before it serves, when no executor runs yet).
        """
        run = self.handle_message if in_process else self.handle
        replies: list[Reply] = []
        seen: set[str] = set()
        for message_id in await self._steps.unfinished(limit=limit):
            memory = await self.store.get_memory(message_id)
            if memory is None:
                continue
            seen.add(message_id)
            replies.append(await run(self._incoming_from(memory)))
        for memory in await self.store.unanswered_messages(agent_id=self.agent_id, limit=limit):
            if memory.id not in seen and len(replies) < limit:
                replies.append(await run(self._incoming_from(memory)))
        return replies

    async def recover_at_start(self) -> list[Reply]:
        """What long-running commands call when they start: :meth:`recover`, bounded by
        ``CARRIER_RECOVER_LIMIT``, unless ``CARRIER_RECOVER_ON_START=false``; logged."""
        if not self.settings.recover_on_start or not self.settings.recover_limit:
            return []
        replies = await self.recover(limit=self.settings.recover_limit, in_process=True)
        try:  # decided approvals whose run a crash cut off, and expired ones
            await self._runtime.approvals.recover()
        except Exception:
            logger.exception("%s: recovering approvals failed", self.character.name)
        if replies:
            logger.warning(
                "%s: recovered %d message(s) a previous run left unfinished",
                self.character.name,
                len(replies),
            )
        return replies

    def _incoming_from(self, memory: Memory) -> IncomingMessage:
        meta = memory.metadata
        return IncomingMessage(
            text=memory.content.text,
            user_id=memory.entity_id,
            user_name=meta.get("user_name"),
            room_id=memory.room_id,
            source=memory.content.source or "direct",
            message_id=memory.id,
            attachments=memory.content.attachments,
            room_type=meta.get("room_type", "direct"),
            role=meta.get("role", Role.MEMBER),
        )


async def _prefill(model: Model, prefix: ModelRequest) -> None:
    try:
        await model.prefill(prefix)
    except Exception as exc:  # only a cache missed: the next message reads its prompt
        logger.info(
            "Prefilling room %s's next prefix failed: %s", prefix.metadata.get("room_id"), exc
        )


async def _release(lease: Lease | None) -> None:
    """Delete a finished run's lease, retrying a store that is briefly away (0.05 s,
    doubling, 5 tries). If it stays away, the entry stays: recovery takes the run for
    cut off after its answer, reuses the stored answer and runs the evaluators again."""
    if lease is None:
        return
    try:
        await lease.release()
        return
    except StoreError as error:  # the policy below is built only when needed
        logger.info("Releasing the lease %s failed (%s); retrying", lease.key, error)
    await asyncio.sleep(0.05)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(StoreError),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        stop=stop_after_attempt(4),
        before_sleep=lambda state: logger.info(
            "Releasing the lease %s failed (%s); retrying", lease.key, state.outcome
        ),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await lease.release()
    except StoreError:
        logger.warning("Could not release the lease %s", lease.key, exc_info=True)


#: Responses read with their message at once (most messages have one).
_RESPONSES_READ = 4


def _response_id(stem: str, index: int) -> str:
    """The id of a message's ``index``-th response: ``stem`` ("{message id}-{agent
    id}"), then ``stem-1``, ``stem-2``, ..."""
    return f"{stem}-{index}" if index else stem


def _reply_of(message: Memory, responses: list[Memory]) -> Reply | None:
    """The reply that ``responses`` stored for ``message``; ``None`` without any."""
    if not responses:
        return None
    ignored = bool(responses[0].metadata.get("ignored"))
    return Reply(message=message, responses=[] if ignored else responses, ignored=ignored)
