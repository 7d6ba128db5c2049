"""The loop's stages before the answer, as methods of ``Composing`` (the base of
``LoopStages``).

Store the message (stage 4), decide whether to respond, compose the state (stage 5) and
the context (stage 6): everything the model is asked is gathered here. The stages after
it (generate, act, evaluate, remember) are in :mod:`carrier.stages`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from carrier.acting import ActionTable
from carrier.admission import Admission
from carrier.errors import CarrierError, ConfigurationError, ModelError
from carrier.model_chain import ModelChain
from carrier.plugin_calls import run_providers
from carrier.prompts import (
    SHOULD_RESPOND_TEMPLATE,
    TurnCache,
    compose_context,
    parse_should_respond,
    render,
)
from carrier.stores import TurnQuery, TurnReads
from carrier.types import (
    ChatMessage,
    Entity,
    EventType,
    GoalStatus,
    Memory,
    MemoryType,
    ModelClass,
    ModelRequest,
    RespondDecision,
    Role,
    Room,
    State,
)

if TYPE_CHECKING:
    from carrier.character import Character
    from carrier.host import PluginHost
    from carrier.layout import HistoryWindow
    from carrier.protocols import Evaluator, MemoryStore, Provider
    from carrier.runtime import AgentRuntime
    from carrier.settings import CarrierSettings
    from carrier.steps import Lease, StepLog

__all__ = ["HISTORY_LIMIT", "SMALL_MODEL_HISTORY_LIMIT", "Composing", "StoredMessage"]

logger = logging.getLogger("carrier.runtime")

#: Messages of a room's history in the state when ``CARRIER_HISTORY_LIMIT`` is unset.
HISTORY_LIMIT = 32
#: The same for a small large model (``Model.small``): a window half as long, which its
#: next prefix's prefill (``carrier.lookahead``) keeps from costing a turn at each drop.
SMALL_MODEL_HISTORY_LIMIT = 16


class StoredMessage(NamedTuple):
    """What :meth:`Composing.store_message` returns."""

    #: The stored message (the earlier copy if it was stored before).
    message: Memory
    #: Whether this call stored it.
    fresh: bool
    #: The turn's reads, made with the write; ``None`` if not fresh or if they failed.
    reads: TurnReads | None


class Composing(Admission):
    """Stages 4-6 and the parts every stage uses; ``AgentRuntime`` wires them."""

    host: PluginHost
    settings: CarrierSettings
    character: Character
    agent_id: str
    _store: MemoryStore | None
    _chains: dict[ModelClass, ModelChain | None]
    _actions: ActionTable
    _providers: list[Provider]
    _evaluators: list[Evaluator]
    _connected: set[tuple[str, str]]
    _rooms: dict[str, Room]
    _actors: dict[str, list[Entity]]
    _persona: str
    _turns: TurnCache | None
    _window: HistoryWindow
    _speaker_label: re.Pattern[str]
    _speaker_names: list[str]
    _steps: StepLog

    @property
    def _runtime(self) -> AgentRuntime:
        """This object as the ``AgentRuntime`` it is (what plugins' methods receive)."""
        return cast("AgentRuntime", self)

    def _offers_actions(self) -> bool:
        """Actions are offered only to a large model that can choose them."""
        chain = self._chains.get(ModelClass.LARGE)
        return chain is not None and chain.primary.calls_actions

    @property
    def store(self) -> MemoryStore:
        if self._store is None:
            raise CarrierError("The runtime is not started; use 'async with AgentRuntime(...)'.")
        return self._store

    def model(self, model_class: ModelClass | str = ModelClass.LARGE) -> ModelChain:
        """The chain serving ``model_class``; ``ConfigurationError`` if none."""
        chain = self._chains.get(ModelClass(model_class))
        if chain is None:
            raise ConfigurationError(
                f"No {ModelClass(model_class).value} model is configured; set "
                f"CARRIER_MODEL_{ModelClass(model_class).value.upper()}."
            )
        return chain

    def _history_limit(self) -> int:
        """``CARRIER_HISTORY_LIMIT``, else :data:`HISTORY_LIMIT`, or
        :data:`SMALL_MODEL_HISTORY_LIMIT` when the large model is small."""
        if self.settings.history_limit is not None:
            return self.settings.history_limit
        chain = self._chains.get(ModelClass.LARGE)
        small = chain is not None and chain.primary.small
        return SMALL_MODEL_HISTORY_LIMIT if small else HISTORY_LIMIT

    # ---- stages 4-6 ------------------------------------------------------------------

    async def store_message(self, message: Memory, *, lease: Lease | None = None) -> StoredMessage:
        """Stage 4: embed (when configured) and store. Returns the stored memory,
        whether it is new and, if it is, the turn's reads (``None`` if they failed):
        the write reads them too (``MemoryStore.create_memory_reading_turn``, one round
        trip on PostgreSQL). The message is durable before any model is called. A new
        message's run ``lease`` is taken in the same write (``Lease.acquire_with``)."""
        started = time.perf_counter()
        await self.emit(EventType.MESSAGE_RECEIVED, message)
        embedder = self._chains.get(ModelClass.EMBEDDING)
        embedded: dict[str, Any] = {}
        if embedder is not None and message.content.text and message.embedding is None:
            try:
                message.embedding = (
                    await embedder.embed([message.content.text], on_event=self._chain_event)
                )[0]
            except (ModelError, NotImplementedError) as exc:
                logger.warning("Message %s stored without an embedding: %s", message.id, exc)
            # what the embeddings call took, from the stage's start (observers' spans)
            embedded = {
                "embedding_model": embedder.primary.name,
                "embed_ms": (time.perf_counter() - started) * 1000,
                "embedded": message.embedding is not None,
            }
        turn = self._turn_query(message.room_id)
        if lease is not None:
            fresh, reads = await lease.acquire_with(message, turn)
        else:
            fresh, reads = await self.store.create_memory_reading_turn(message, {}, turn)
        if not fresh:
            stored = await self.store.get_memory(message.id)
            message = stored or message
        try:
            await self.emit(
                EventType.MESSAGE_STORED,
                message,
                (time.perf_counter() - started) * 1000,
                new=fresh,
                **embedded,
            )
        except BaseException:  # cancelled: the lease stays, unrenewed, for recovery
            if fresh and lease is not None:
                await lease.abandon()
            raise
        return StoredMessage(message, fresh, reads)

    def _turn_query(self, room_id: str) -> TurnQuery:
        """What answering a message in ``room_id`` reads before its prompt
        (``MemoryStore.read_turn``): the agent's participation, goals, the room's
        history and its open-choices marker."""
        return TurnQuery(
            agent_id=self.agent_id,
            room_id=room_id,
            history_limit=self._history_limit(),
            cache_keys=(self._runtime.choices.open_key(room_id),),
        )

    async def should_respond(
        self, message: Memory, room: Room, *, reads: TurnReads | None = None
    ) -> bool:
        """Ask ``carrier_choose_should_respond``; ``ASK_MODEL`` asks the small model.
        ``reads``: the turn's reads, if made (else the agent's participant is read)."""
        started = time.perf_counter()
        if reads is not None:
            participant = reads.participant
        else:
            participant = await self.store.get_participant(room.id, self.agent_id)
        decision = self.host.choose(
            "carrier_choose_should_respond",
            runtime=self,
            message=message,
            room=room,
            participant=participant,
        )
        if decision == RespondDecision.ASK_MODEL:
            decision = await self._ask_should_respond(message)
        answer: bool = decision != RespondDecision.IGNORE
        await self.emit(
            EventType.SHOULD_RESPOND,
            message,
            (time.perf_counter() - started) * 1000,
            decision=str(decision),
            respond=answer,
        )
        return answer

    async def _ask_should_respond(self, message: Memory) -> RespondDecision:
        recent = await self.store.get_memories(
            agent_id=self.agent_id, room_id=message.room_id, limit=10
        )
        history = "\n".join(
            f"{m.metadata.get('user_name') or m.entity_id}: {m.content.text}"
            for m in recent
            if m.content.text
        )
        prompt = render(
            self.character.templates.get("shouldRespondTemplate", SHOULD_RESPOND_TEMPLATE),
            {"agent_name": self.character.name, "history": history},
        )
        request = ModelRequest(
            model_class=ModelClass.SMALL,
            system=prompt,
            max_tokens=8,
            messages=[ChatMessage(role="user", content=message.content.text)],
        )
        try:
            answer = (
                await self.model(ModelClass.SMALL).generate(request, on_event=self._chain_event)
            ).text
        except (ModelError, ConfigurationError) as exc:
            logger.warning("should-respond check failed, ignoring the message: %s", exc)
            return RespondDecision.IGNORE
        decision = parse_should_respond(answer)
        if decision is None:
            logger.info("should-respond answer %r is not RESPOND/IGNORE/STOP; ignoring", answer)
        return RespondDecision.RESPOND if decision else RespondDecision.IGNORE

    async def compose_state(
        self,
        message: Memory,
        room: Room,
        *,
        role: Role = Role.MEMBER,
        reads: TurnReads | None = None,
    ) -> State:
        """Stage 5: history, actors, goals, facts, knowledge and providers (history and
        goals from ``reads``, the turn's reads, if made)."""
        started = time.perf_counter()
        store, settings = self.store, self.settings
        if reads is None:
            # History is messages only: facts, reflections and knowledge have sections.
            recent = await store.get_memories(
                agent_id=self.agent_id,
                room_id=room.id,
                type=MemoryType.MESSAGE,
                limit=self._history_limit(),
            )
            in_progress = await store.get_goals(
                agent_id=self.agent_id, status=GoalStatus.IN_PROGRESS
            )
        else:
            recent, in_progress = reads.history, reads.goals
        actors = self._actors.get(room.id)
        if actors is None:
            ids = [p.entity_id for p in await store.get_participants(room.id)]
            actors = self._actors[room.id] = await self._actors_of(ids)
        # A goal set in a room stays there; only the agent's own (no room) are agent-wide.
        goals = [g for g in in_progress if g.room_id in (None, room.id)]
        scope = self.scope_for(message, room)
        state = State(
            agent_id=self.agent_id,
            agent_name=self.character.name,
            room=room,
            message=message,
            scope=scope,
            recent_messages=recent,
            actors=actors,
            goals=goals,
            sender=next((a for a in actors if a.id == message.entity_id), None),
        )
        searched: dict[str, Any] = {}
        if message.embedding is not None:
            search_started = time.perf_counter()
            if settings.facts_limit:
                state.facts = await store.search_memories(
                    agent_id=self.agent_id,
                    embedding=message.embedding,
                    type=MemoryType.FACT,
                    limit=settings.facts_limit,
                    threshold=settings.search_threshold,
                    scope=scope,
                )
            if settings.knowledge_limit:
                state.knowledge = await store.search_memories(
                    agent_id=self.agent_id,
                    embedding=message.embedding,
                    type=MemoryType.FRAGMENT,
                    limit=settings.knowledge_limit,
                    threshold=settings.search_threshold,
                    scope=scope,
                )
            # the memory searches, from the stage's start (observers' spans)
            searched = {
                "search_start_ms": (search_started - started) * 1000,
                "search_ms": (time.perf_counter() - search_started) * 1000,
                "facts": len(state.facts),
                "knowledge": len(state.knowledge),
            }
        if self._actions and self._offers_actions():
            offered = await self._actions.offered(self._runtime, message, state, role)
            state.actions = [a.spec() for a in offered]
        if self._providers:
            await run_providers(self._runtime, self._providers, message, state)
        await self.emit(
            EventType.STATE_COMPOSED,
            message,
            (time.perf_counter() - started) * 1000,
            providers=len(state.providers),
            **searched,
        )
        return state

    def compose_context(self, state: State) -> ModelRequest:
        """Stage 6: the request within the token budget (a quarter of a known context
        window left to the answer), laid out for prefix caches (``carrier.layout``)."""
        model, limit = self.model(ModelClass.LARGE).primary, self.settings.max_prompt_tokens
        if self._turns is None or self._turns.count_tokens != model.count_tokens:
            self._turns = TurnCache(model.count_tokens, int(self.settings.turn_cache_mb * 2**20))
        self._window.limit = self._history_limit()
        return compose_context(
            state,
            self.character,
            persona=self._persona,
            max_prompt_tokens=min(limit, (model.context_window or 4 * limit) * 3 // 4),
            count_tokens=self._turns.count_tokens,
            turns=self._turns,
            stable={p.name for p in self._providers if p.stable},
            window=self._window,
            short_answers=model.small,
        )
