"""``AgentRuntime``: the loop, talking only to protocols and hooks.

Receive → connect → store → (should respond) → compose state → compose context →
generate → act → evaluate → remember. Each stage is a method with pydantic input
and output, so an executor can run and checkpoint them one by one; the default
executor runs :meth:`AgentRuntime.handle_message` in-process, one message per
room at a time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from carrier.acting import ActionTable
from carrier.character import Character, check_plugins, load_character, plugin_name
from carrier.errors import (
    CarrierError,
    ConfigurationError,
    InputError,
    ModelError,
    StoreError,
)
from carrier.model_chain import ModelChain, RetryPolicy, parse_model_spec
from carrier.prompts import (
    SHOULD_RESPOND_TEMPLATE,
    character_system_prompt,
    compose_context,
    json_object,
    render,
)
from carrier.settings import data_dir, overrides_from_character
from carrier.types import (
    ActionResult,
    ChatMessage,
    Content,
    Entity,
    Event,
    EventType,
    GoalStatus,
    IncomingMessage,
    Memory,
    MemoryType,
    ModelClass,
    ModelRequest,
    ModelResponse,
    Participant,
    ParticipantState,
    ProviderOutput,
    Reply,
    RespondDecision,
    Role,
    Room,
    State,
)

if TYPE_CHECKING:
    from carrier.autonomy import AutonomousRun
    from carrier.host import PluginHost
    from carrier.protocols import Action, Evaluator, Executor, MemoryStore, Model, Provider
    from carrier.types import EvaluatorResult, Goal

__all__ = ["DEFAULT_CHARACTER", "AgentRuntime"]

logger = logging.getLogger("carrier.runtime")

#: The character used when none is configured.
DEFAULT_CHARACTER = Path(__file__).parent / "builtin" / "default_character.json"

TextCallback = Callable[[str], Awaitable[None]]
_CACHE_LIMIT = 50_000


class AgentRuntime:
    """One agent (one character) on a host, a store and its models.

    Args:
        character: A ``Character``, a path to a character file, or ``None`` for
            ``CARRIER_CHARACTER`` or the default character.
        host: The plugin host; a new one (autoloading plugins) when omitted.
        store: A store to share between runtimes; otherwise opened from
            ``CARRIER_DATABASE_URL`` and closed with the runtime.
        models: Models or specs by class (``"large"``, ``"small"``, ``"embedding"``),
            overriding settings; ``None`` for ``"embedding"`` disables embeddings.
    """

    def __init__(
        self,
        character: Character | str | Path | None = None,
        *,
        host: PluginHost | None = None,
        store: MemoryStore | None = None,
        models: Mapping[str, Model | str | None] | None = None,
    ) -> None:
        if host is None:
            from carrier.host import PluginHost

            host = PluginHost()
        self.host = host
        self.settings = host.carrier_settings
        if character is None:
            character = self.settings.character or DEFAULT_CHARACTER
        self.character = (
            character if isinstance(character, Character) else load_character(character)
        )
        self.agent_id = self.character.id
        self._store = store
        self._owns_store = store is None
        self._model_overrides = dict(models or {})
        self._chains: dict[ModelClass, ModelChain | None] = {}
        self._executor: Executor | None = None
        self._actions = ActionTable({})
        self._providers: list[Provider] = []
        self._evaluators: list[Evaluator] = []
        self._connected: set[tuple[str, str]] = set()
        self._rooms: dict[str, Room] = {}
        self._actors: dict[str, list[Entity]] = {}
        self._persona = character_system_prompt(self.character)
        # "Nova: hello" -> "hello": small models copy the example conversations' format.
        names = "|".join(re.escape(n) for n in (self.character.name, self.character.username) if n)
        self._speaker_label = re.compile(rf"^\s*(?:{names})\s*:\s*", re.IGNORECASE)
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Check plugins, open the store, resolve models, build actions and providers."""
        if self._started:
            return
        check_plugins(self.character, self.host.plugins, source=self.character.name)
        if self._store is None:
            scheme, url = self._store_target()
            self._store = self.host.stores.create(scheme, url=url)
            await self._store.open()
        for model_class in ModelClass:
            self._chains[model_class] = self._resolve_chain(model_class)
        self._actions = ActionTable(
            {e.name: e.factory() for e in self.host.actions if self._enabled(e.plugin)}
        )
        self._providers = sorted(
            (e.factory() for e in self.host.providers if self._enabled(e.plugin)),
            key=lambda p: p.position,
        )
        self._evaluators = [e.factory() for e in self.host.evaluators if self._enabled(e.plugin)]
        executor_name = (
            self.settings.executor
            or self.host.choose(
                "carrier_choose_executor", runtime=self, available=self.host.executors.names()
            )
            or "inprocess"
        )
        self._executor = self.host.executors.create(executor_name)
        components: list[Action | Provider | Evaluator] = [
            *self._actions.by_name.values(),
            *self._providers,
            *self._evaluators,
        ]
        for component in components:
            try:
                await component.setup(self)
            except Exception:
                logger.exception(
                    "setup() of %r failed; it stays in service", type(component).__name__
                )
        await self.store.upsert_agent(
            self.agent_id, self.character.name, {"username": self.character.username}
        )
        names = [n for n in (self.character.name, self.character.username) if n]
        await self.store.upsert_entity(
            Entity(id=self.agent_id, agent_id=self.agent_id, names=names)
        )
        self._started = True

    async def stop(self) -> None:
        """Close the executor, the models and the store (if this runtime opened it)."""
        if self._executor is not None:
            await self._executor.aclose()
        closed: set[int] = set()
        for chain in self._chains.values():
            if chain is not None:
                for link in chain.links:
                    if id(link) not in closed:
                        closed.add(id(link))
                        await link.aclose()
        self._chains.clear()
        if self._owns_store and self._store is not None:
            await self._store.close()
            self._store = None
        self._started = False

    @property
    def store(self) -> MemoryStore:
        if self._store is None:
            raise CarrierError("The runtime is not started; use 'async with AgentRuntime(...)'.")
        return self._store

    def _enabled(self, plugin: str) -> bool:
        """Every installed plugin serves every agent (a character's list is a requirement)."""
        return True

    def _store_target(self) -> tuple[str, str]:
        url = self.settings.database_url
        if url is None:
            if "sqlite" in self.host.stores:
                url = f"sqlite:///{data_dir() / 'carrier.db'}"
            else:
                url = "memory://"
        scheme = url.partition("://")[0].split("+")[0].lower() if "://" in url else ""
        if not scheme:
            raise ConfigurationError(
                f"CARRIER_DATABASE_URL={url!r} has no scheme; write e.g. "
                f"'sqlite:///path/to/carrier.db' or 'memory://'."
            )
        return scheme, url

    def _resolve_chain(self, model_class: ModelClass) -> ModelChain | None:
        override = self._model_overrides.get(model_class.value, ...)
        if override is None:
            return None
        if override is not ... and not isinstance(override, str):
            return ModelChain([override], policy=self._retry_policy())
        spec = override if isinstance(override, str) else self._model_spec(model_class)
        if spec is None or spec.strip().lower() == "none":
            return None
        links = []
        for backend, model_id in parse_model_spec(spec):
            entry = self.host.models.entry(backend)
            kwargs: dict[str, Any] = {} if model_id is None else {"model": model_id}
            if entry.settings is not None:
                overrides = overrides_from_character(entry.settings, self.character.all_secrets())
                settings = self.host.settings.get(entry.settings, overrides)
                links.append(entry.factory(settings, **kwargs))
            else:
                links.append(entry.factory(**kwargs))
        return ModelChain(links, policy=self._retry_policy())

    def _model_spec(self, model_class: ModelClass) -> str | None:
        chosen = self.host.choose(
            "carrier_choose_model",
            runtime=self,
            model_class=model_class,
            available=self.host.models.names(),
        )
        if chosen:
            return str(chosen)
        configured = {
            ModelClass.LARGE: self.settings.model_large,
            ModelClass.SMALL: self.settings.model_small or self.settings.model_large,
            ModelClass.EMBEDDING: self.settings.model_embedding,
        }[model_class]
        if configured:
            return configured
        provider = plugin_name(self.character.model_provider or "")
        if provider and provider in self.host.models and model_class is not ModelClass.EMBEDDING:
            return provider
        return "local" if "local" in self.host.models else "echo"

    def _retry_policy(self) -> RetryPolicy:
        settings = self.settings
        return RetryPolicy(
            attempts=settings.model_retry_attempts,
            budget_s=settings.model_retry_budget_s,
            initial_s=settings.model_retry_initial_s,
            jitter_s=min(0.5, settings.model_retry_initial_s),
        )

    def model(self, model_class: ModelClass | str = ModelClass.LARGE) -> ModelChain:
        """The chain serving ``model_class``; ``ConfigurationError`` if none."""
        chain = self._chains.get(ModelClass(model_class))
        if chain is None:
            raise ConfigurationError(
                f"No {ModelClass(model_class).value} model is configured; set "
                f"CARRIER_MODEL_{ModelClass(model_class).value.upper()}."
            )
        return chain

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise CarrierError("The runtime is not started; use 'async with AgentRuntime(...)'.")
        return self._executor

    @property
    def actions(self) -> ActionTable:
        return self._actions

    # ---- services for actions, providers and evaluators ---------------------------

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        """Embed ``texts`` with the embedding model, or ``None`` if none is configured."""
        chain = self._chains.get(ModelClass.EMBEDDING)
        if chain is None or not texts:
            return None
        return await chain.embed(texts, on_event=self._chain_event)

    async def send_message(
        self, room_id: str, content: Content, *, in_reply_to: str | None = None
    ) -> Memory:
        """Store a message from the agent in ``room_id`` (any room it knows) and emit
        ``message_sent``; clients deliver it."""
        memory = Memory(
            agent_id=self.agent_id,
            entity_id=self.agent_id,
            room_id=room_id,
            content=content.model_copy(update={"in_reply_to": in_reply_to}),
            metadata={"sent": True},
        )
        await self.store.create_memory(memory)
        await self.emit(EventType.MESSAGE_SENT, memory, responses=1, room_id=room_id)
        return memory

    async def set_participant_state(
        self, room_id: str, entity_id: str, state: ParticipantState
    ) -> None:
        """Follow, mute or reset a participant's state (the agent's own, usually)."""
        await self.store.set_participant_state(room_id, entity_id, state)
        self._actors.pop(room_id, None)

    # ---- events ---------------------------------------------------------------------

    async def emit(
        self, type: EventType, message: Memory | None = None, duration_ms: float = 0.0, **data: Any
    ) -> None:
        """Emit an event to the host's observers (free when there are none)."""
        if not self.host.has_observers:
            return
        await self.host.emit(
            Event(
                type=type,
                agent_id=self.agent_id,
                room_id=message.room_id if message else None,
                message_id=message.id if message else None,
                duration_ms=duration_ms,
                data=data,
            )
        )

    async def _chain_event(self, kind: str, data: dict[str, Any]) -> None:
        event = EventType.MODEL_RETRY if kind == "retry" else EventType.MODEL_FALLBACK
        await self.emit(event, None, **data)

    # ---- entry points ----------------------------------------------------------------

    async def handle(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Handle a message through the executor (the way clients should call)."""
        return await self.executor.submit(self, incoming, on_text=on_text)

    def room_id_for(self, incoming: IncomingMessage) -> str:
        """The room an incoming message belongs to."""
        return incoming.room_id or f"default-room-{self.agent_id}"

    async def handle_message(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Run every stage for one message (executors call this, one per room at a time).

        Raises only if the message could not be stored; after that, every failure
        becomes ``Reply.error`` and the message stays unanswered for :meth:`recover`.
        """
        started = time.perf_counter()
        message = self.receive(incoming)
        room = await self.connect(message, incoming)
        message, fresh = await self.store_message(message)
        if not fresh:
            previous = await self._stored_responses(message)
            if previous:
                ignored = bool(previous[0].metadata.get("ignored"))
                return Reply(
                    message=message,
                    responses=[] if ignored else previous,
                    duplicate=True,
                    ignored=ignored,
                )
        try:
            reply = await self.respond(message, room, role=incoming.role, on_text=on_text)
        except (ModelError, StoreError, ConfigurationError) as exc:
            logger.info("Message %s was stored but not answered: %s", message.id, exc)
            await self.emit(EventType.RUN_FAILED, message, error=str(exc))
            return Reply(message=message, error=str(exc))
        except Exception as exc:  # a bug in a plugin or here must not stop the runtime
            logger.exception("Message %s was stored but handling it failed", message.id)
            error = f"Internal error while answering: {type(exc).__name__}: {exc}"
            await self.emit(EventType.RUN_FAILED, message, error=error)
            return Reply(message=message, error=error)
        await self.emit(
            EventType.RUN_ENDED,
            message,
            (time.perf_counter() - started) * 1000,
            responses=len(reply.responses),
            ignored=reply.ignored,
        )
        return reply

    async def _stored_responses(self, message: Memory) -> list[Memory]:
        found: list[Memory] = []
        while True:
            suffix = f"-{len(found)}" if found else ""
            memory = await self.store.get_memory(f"{message.id}-{self.agent_id}{suffix}")
            if memory is None:
                return found
            found.append(memory)

    async def recover(self, *, limit: int = 1000) -> list[Reply]:
        """Answer the messages a crash left stored but unanswered, once each, in order."""
        replies = []
        for memory in await self.store.unanswered_messages(agent_id=self.agent_id, limit=limit):
            replies.append(await self.handle(self._incoming_from(memory)))
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

    async def run_autonomous(
        self,
        goal: str | Goal,
        *,
        max_steps: int = 10,
        on_step: Callable[[int, Reply, Goal], Awaitable[None]] | None = None,
    ) -> AutonomousRun:
        """Work toward ``goal`` without user messages until it is done or the budget is spent."""
        from carrier.autonomy import run_autonomous

        return await run_autonomous(self, goal, max_steps=max_steps, on_step=on_step)

    # ---- the stages ------------------------------------------------------------------

    def receive(self, incoming: IncomingMessage) -> Memory:
        """Stage 2: a client's message becomes a ``Memory``.

        Raises ``InputError`` (nothing stored) for a message over
        ``CARRIER_MAX_MESSAGE_CHARS``.
        """
        limit = self.settings.max_message_chars
        if len(incoming.text) > limit:
            raise InputError(
                f"The message has {len(incoming.text):,} characters; this agent accepts at "
                f"most {limit:,} (CARRIER_MAX_MESSAGE_CHARS). Split it or send it as a file."
            )
        metadata: dict[str, Any] = {
            "room_type": incoming.room_type.value,
            "role": incoming.role.value,
        }
        if incoming.user_name:
            metadata["user_name"] = incoming.user_name
        metadata.update(incoming.metadata)
        fields: dict[str, Any] = {}
        if incoming.message_id:
            fields["id"] = incoming.message_id
        return Memory(
            agent_id=self.agent_id,
            entity_id=incoming.user_id,
            room_id=self.room_id_for(incoming),
            world_id=incoming.world_id,
            type=MemoryType.MESSAGE,
            content=Content(
                text=incoming.text,
                source=incoming.source,
                attachments=incoming.attachments,
                in_reply_to=incoming.in_reply_to,
            ),
            metadata=metadata,
            **fields,
        )

    async def connect(self, message: Memory, incoming: IncomingMessage) -> Room:
        """Stage 3: entity, room and participant records exist (created once, cached)."""
        started = time.perf_counter()
        key = (message.entity_id, message.room_id)
        room = self._rooms.get(message.room_id)
        if key not in self._connected or room is None:
            store = self.store
            room = await store.get_room(message.room_id)
            if room is None:
                room = Room(
                    id=message.room_id,
                    agent_id=self.agent_id,
                    source=incoming.source,
                    type=incoming.room_type,
                    world_id=incoming.world_id,
                    name=incoming.room_id,
                )
                await store.upsert_room(room)
            names = [incoming.user_name] if incoming.user_name else []
            await store.upsert_entity(
                Entity(
                    id=message.entity_id, agent_id=self.agent_id, names=names or [message.entity_id]
                )
            )
            if await store.get_participant(room.id, message.entity_id) is None:
                await store.upsert_participant(
                    Participant(room_id=room.id, entity_id=message.entity_id, role=incoming.role)
                )
            if await store.get_participant(room.id, self.agent_id) is None:
                await store.upsert_participant(
                    Participant(room_id=room.id, entity_id=self.agent_id)
                )
            if len(self._connected) > _CACHE_LIMIT:
                self._connected.clear()
                self._rooms.clear()
                self._actors.clear()
            self._connected.add(key)
            self._rooms[room.id] = room
            self._actors.pop(room.id, None)
        await self.emit(EventType.CONNECTED, message, (time.perf_counter() - started) * 1000)
        return room

    async def store_message(self, message: Memory) -> tuple[Memory, bool]:
        """Stage 4: embed (when configured) and store. Returns the stored memory and
        whether it is new. The message is durable before any model is called."""
        started = time.perf_counter()
        await self.emit(EventType.MESSAGE_RECEIVED, message)
        embedder = self._chains.get(ModelClass.EMBEDDING)
        if embedder is not None and message.content.text and message.embedding is None:
            try:
                message.embedding = (
                    await embedder.embed([message.content.text], on_event=self._chain_event)
                )[0]
            except (ModelError, NotImplementedError) as exc:
                logger.warning("Message %s stored without an embedding: %s", message.id, exc)
        fresh = await self.store.create_memory(message)
        if not fresh:
            stored = await self.store.get_memory(message.id)
            message = stored or message
        await self.emit(
            EventType.MESSAGE_STORED, message, (time.perf_counter() - started) * 1000, new=fresh
        )
        return message, fresh

    async def respond(
        self,
        message: Memory,
        room: Room,
        *,
        role: Role = Role.MEMBER,
        on_text: TextCallback | None = None,
    ) -> Reply:
        """Stages 5-10 for a stored message."""
        if not await self.should_respond(message, room):
            ignored = await self.remember(message, [Content(actions=["IGNORE"])], ignored=True)
            return Reply(message=message, responses=ignored, ignored=True)
        state = await self.compose_state(message, room, role=role)
        request = self.compose_context(state)
        response = await self.generate(request, message, on_text=on_text)
        contents, results = await self.act(message, state, response, role=role)
        responses_preview = [self._response_memory(message, c, i) for i, c in enumerate(contents)]
        evaluations = await self.evaluate(message, state, responses_preview)
        responses = await self.remember(message, contents)
        return Reply(
            message=message,
            responses=responses,
            action_results=results,
            evaluator_results=evaluations,
            ignored=not contents,
        )

    async def should_respond(self, message: Memory, room: Room) -> bool:
        """Ask ``carrier_choose_should_respond``; ``ASK_MODEL`` asks the small model."""
        started = time.perf_counter()
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
            ).text.upper()
        except (ModelError, ConfigurationError) as exc:
            logger.warning("should-respond check failed, ignoring the message: %s", exc)
            return RespondDecision.IGNORE
        return RespondDecision.RESPOND if "RESPOND" in answer else RespondDecision.IGNORE

    async def compose_state(
        self, message: Memory, room: Room, *, role: Role = Role.MEMBER
    ) -> State:
        """Stage 5: history, actors, goals, facts, knowledge and providers."""
        started = time.perf_counter()
        store, settings = self.store, self.settings
        recent = await store.get_memories(
            agent_id=self.agent_id, room_id=room.id, limit=settings.history_limit
        )
        actors = self._actors.get(room.id)
        if actors is None:
            ids = [p.entity_id for p in await store.get_participants(room.id)]
            actors = self._actors[room.id] = await store.get_entities(ids)
        goals = [
            g
            for g in await store.get_goals(agent_id=self.agent_id, status=GoalStatus.IN_PROGRESS)
            if g.room_id in (None, room.id)
        ]
        state = State(
            agent_id=self.agent_id,
            agent_name=self.character.name,
            room=room,
            message=message,
            recent_messages=recent,
            actors=actors,
            goals=goals,
            sender=next((a for a in actors if a.id == message.entity_id), None),
        )
        if message.embedding is not None:
            if settings.facts_limit:
                state.facts = await store.search_memories(
                    agent_id=self.agent_id,
                    embedding=message.embedding,
                    type=MemoryType.FACT,
                    limit=settings.facts_limit,
                    threshold=settings.search_threshold,
                )
            if settings.knowledge_limit:
                state.knowledge = await store.search_memories(
                    agent_id=self.agent_id,
                    embedding=message.embedding,
                    type=MemoryType.FRAGMENT,
                    limit=settings.knowledge_limit,
                    threshold=settings.search_threshold,
                )
        if self._actions:
            offered = await self._actions.offered(self, message, state, role)
            state.actions = [a.spec() for a in offered]
        if self._providers:
            await self._run_providers(message, state)
        await self.emit(EventType.STATE_COMPOSED, message, (time.perf_counter() - started) * 1000)
        return state

    async def _run_providers(self, message: Memory, state: State) -> None:
        providers = [p for p in self._providers if not p.dynamic]
        outputs: dict[str, ProviderOutput] = {}

        async def run(provider: Provider) -> None:
            try:
                output = await asyncio.wait_for(
                    provider.get(self, message, state), timeout=provider.timeout_s
                )
                if provider.max_tokens is not None and output.text:
                    output.text = self._trim_to_tokens(output.text, provider.max_tokens)
                outputs[provider.name] = output
            except TimeoutError:
                await self.emit(
                    EventType.PROVIDER_FAILED,
                    message,
                    provider=provider.name,
                    error=f"timed out after {provider.timeout_s} s",
                )
            except Exception as exc:
                logger.exception("Provider %r failed", provider.name)
                await self.emit(
                    EventType.PROVIDER_FAILED,
                    message,
                    provider=provider.name,
                    error=f"{type(exc).__name__}: {exc}",
                )

        await asyncio.gather(*(run(p) for p in providers))
        # sections in provider order (position), whatever order they finished in
        for provider in providers:
            if provider.name in outputs:
                state.providers[provider.name] = outputs[provider.name]

    def _trim_to_tokens(self, text: str, budget: int) -> str:
        """Cut ``text`` to fit ``budget`` tokens of the large model, ellipsis included,
        at a line or word boundary when there is one in the second half."""
        chain = self._chains.get(ModelClass.LARGE)
        count = chain.primary.count_tokens if chain is not None else (lambda t: len(t) // 4 + 1)
        if count(text) <= budget:
            return text
        low, high = 0, len(text)
        while low < high:  # longest prefix that fits with the ellipsis
            middle = (low + high + 1) // 2
            if count(text[:middle] + " …") <= budget:
                low = middle
            else:
                high = middle - 1
        cut = text[:low]
        for separator in ("\n", " "):
            if separator in cut[len(cut) // 2 :]:
                cut = cut[: cut.rindex(separator)]
                break
        return cut.rstrip() + " …"

    def compose_context(self, state: State) -> ModelRequest:
        """Stage 6: render the state into a request within the token budget."""
        model = self.model(ModelClass.LARGE).primary
        budget = self.settings.max_prompt_tokens
        if model.context_window:
            budget = min(budget, model.context_window)
        request = compose_context(
            state,
            self.character,
            persona=self._persona,
            max_prompt_tokens=budget,
            count_tokens=model.count_tokens,
        )
        return request

    async def generate(
        self,
        request: ModelRequest,
        message: Memory | None = None,
        *,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        """Stage 7: the model answers (retries and fallbacks inside the chain)."""
        started = time.perf_counter()
        chain = self.model(request.model_class)
        response = await chain.generate(
            request,
            on_event=self._chain_event,
            on_text=on_text,
            validate=_require_structured if request.response_schema is not None else None,
        )
        await self.emit(
            EventType.MODEL_USED,
            message,
            (time.perf_counter() - started) * 1000,
            model=response.model or chain.primary.name,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
        )
        return response

    async def act(
        self, message: Memory, state: State, response: ModelResponse, *, role: Role = Role.MEMBER
    ) -> tuple[list[Content], list[ActionResult]]:
        """Stage 8: run the chosen actions; a bounded number of further steps when an
        action asks to continue. Returns the contents to send and every result."""
        contents: list[Content] = []
        results: list[ActionResult] = []
        for step in range(self.settings.max_action_steps):
            step_results = [
                await self._actions.run(self, call, message, state, role)
                for call in response.action_calls
            ]
            results.extend(step_results)
            text = self._speaker_label.sub("", response.text, count=1).strip()
            limit = self.settings.max_response_chars
            if len(text) > limit:
                logger.warning(
                    "Model answer of %d characters cut to %d (CARRIER_MAX_RESPONSE_CHARS)",
                    len(text),
                    limit,
                )
                text = text[:limit].rstrip() + " …"
            if text and not any(r.suppress_reply for r in step_results):
                contents.append(
                    Content(
                        text=text,
                        thought=response.thought,
                        actions=[c.name for c in response.action_calls],
                        source=message.content.source,
                        in_reply_to=message.id,
                    )
                )
            for result in step_results:
                contents.extend(result.messages)
            if (
                not any(r.continue_chain for r in step_results)
                or step + 1 == self.settings.max_action_steps
            ):
                break
            state.action_results = list(results)
            state.step = step + 1
            if self._actions:  # what may be offered can depend on the step (CONTINUE)
                offered = await self._actions.offered(self, message, state, role)
                state.actions = [a.spec() for a in offered]
            response = await self.generate(self.compose_context(state), message)
        return contents, results

    async def evaluate(
        self, message: Memory, state: State, responses: list[Memory]
    ) -> list[EvaluatorResult]:
        """Stage 9: evaluators run concurrently, each under its timeout."""
        if not self._evaluators:
            return []
        from carrier.types import EvaluatorResult

        async def run(evaluator: Evaluator) -> EvaluatorResult | None:
            started = time.perf_counter()
            try:
                if not (evaluator.always_run or responses) or not await evaluator.validate(
                    self, message, state
                ):
                    return None
                result = await asyncio.wait_for(
                    evaluator.handler(self, message, state, responses), timeout=evaluator.timeout_s
                ) or EvaluatorResult(name=evaluator.name)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.warning("Evaluator %r failed: %s", evaluator.name, error)
                await self.emit(
                    EventType.EVALUATOR_FAILED, message, evaluator=evaluator.name, error=error
                )
                return EvaluatorResult(name=evaluator.name, success=False, error=error)
            await self.emit(
                EventType.EVALUATOR_COMPLETED,
                message,
                (time.perf_counter() - started) * 1000,
                evaluator=evaluator.name,
            )
            return result

        outcomes = await asyncio.gather(*(run(e) for e in self._evaluators))
        return [o for o in outcomes if o is not None]

    def _response_memory(
        self, message: Memory, content: Content, index: int, *, ignored: bool = False
    ) -> Memory:
        suffix = "" if index == 0 else f"-{index}"
        metadata: dict[str, Any] = {"ignored": True} if ignored else {}
        return Memory(
            id=f"{message.id}-{self.agent_id}{suffix}",
            agent_id=self.agent_id,
            entity_id=self.agent_id,
            room_id=message.room_id,
            world_id=message.world_id,
            content=content,
            metadata=metadata,
        )

    async def remember(
        self, message: Memory, contents: list[Content], *, ignored: bool = False
    ) -> list[Memory]:
        """Stage 10: store the responses; the first has id ``"{message_id}-{agent_id}"``,
        which marks the message answered, so a replay never answers twice."""
        started = time.perf_counter()
        if not contents:
            contents, ignored = [Content(actions=["IGNORE"])], True
        stored = []
        for index, content in enumerate(contents):
            memory = self._response_memory(message, content, index, ignored=ignored)
            if await self.store.create_memory(memory):
                stored.append(memory)
        if not ignored:
            await self.emit(
                EventType.MESSAGE_SENT,
                message,
                (time.perf_counter() - started) * 1000,
                responses=len(stored),
            )
        return [] if ignored else stored


def _require_structured(response: ModelResponse) -> str | None:
    """A structured-output request needs an object: take the backend's, else parse the
    text as JSON; otherwise the response is unusable and the next model is tried."""
    if response.structured is None:
        try:
            response.structured = json_object(response.text)
        except ValueError:
            return "the response holds no JSON object for the requested schema"
    return None
