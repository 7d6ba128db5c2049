"""``AgentRuntime``: one agent on a host, a store and its models.

It wires the parts (store, model chains, actions, providers, evaluators, executor)
and offers the entry points: ``handle`` (through the executor), ``handle_message``
(every stage, see :mod:`carrier.composing` and :mod:`carrier.stages`), ``recover`` and
``run_autonomous``. The default executor runs messages in-process, one message per room
at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from carrier.acting import ActionTable
from carrier.character import Character, check_plugins, load_character, plugin_name
from carrier.collector import pace_collector
from carrier.errors import (
    CarrierError,
    ConfigurationError,
    PluginContractError,
    UnknownNameError,
)
from carrier.layout import HistoryWindow
from carrier.model_chain import ModelChain, RetryPolicy, parse_model_spec
from carrier.plugin_state import PluginState
from carrier.prompts import (
    character_system_prompt,
)
from carrier.running import Runs
from carrier.stages import TextCallback
from carrier.steps import StepLog
from carrier.streaming import speaker_label
from carrier.types import (
    Content,
    Entity,
    EventType,
    IncomingMessage,
    Memory,
    ModelClass,
    ParticipantState,
    ProviderOutput,
    Reply,
    Role,
    Room,
    State,
)

if TYPE_CHECKING:
    from carrier.approvals import Approvals
    from carrier.autonomy import AutonomousRun
    from carrier.choices import Choices
    from carrier.host import PluginHost
    from carrier.protocols import (
        Action,
        ActionSource,
        Evaluator,
        Executor,
        MemoryStore,
        Model,
        Provider,
    )
    from carrier.tasks import Tasks
    from carrier.types import Goal

__all__ = ["DEFAULT_CHARACTER", "AgentRuntime", "open_agents"]

logger = logging.getLogger("carrier.runtime")

_S = TypeVar("_S")

#: The character used when none is configured.
DEFAULT_CHARACTER = Path(__file__).parent / "builtin" / "default_character.json"


class AgentRuntime(Runs):
    """One agent (one character) on a host, a store and its models.

    Args:
        character: A ``Character``, a path to a character file, or ``None`` for
            ``CARRIER_CHARACTER`` or the default character.
        host: The plugin host; a new one (autoloading plugins) when omitted.
        store: A store to share between runtimes; otherwise opened from
            ``CARRIER_DATABASE_URL`` and closed with the runtime.
        models: Models or specs by class (``"large"``, ``"small"``, ``"embedding"``),
            overriding settings; ``None`` for ``"embedding"`` disables embeddings.
        warm_up: Warm the models in the background once started (``carrier.warming``)
            and, after each answer, for the room's next message (``carrier.lookahead``);
            ``False`` for a command that never asks a model.
    """

    def __init__(
        self,
        character: Character | str | Path | None = None,
        *,
        host: PluginHost | None = None,
        store: MemoryStore | None = None,
        models: Mapping[str, Model | str | None] | None = None,
        warm_up: bool = True,
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
        self._listeners: list[Any] = []
        self._executor: Executor | None = None
        self._actions = ActionTable({})
        self._providers: list[Provider] = []
        self._evaluators: list[Evaluator] = []
        self._connected: set[tuple[str, str]] = set()
        self._rooms: dict[str, Room] = {}
        self._actors: dict[str, list[Entity]] = {}
        self._entities: dict[str, Entity] = {}
        self._persona = character_system_prompt(self.character)
        self._turns = None
        self._window = HistoryWindow()
        # "Nova: hello" -> "hello": small models copy the example conversations' format.
        self._speaker_names = [n for n in (self.character.name, self.character.username) if n]
        self._speaker_label = speaker_label(self._speaker_names)
        self._started = False
        self._plugin_settings: dict[str, Any] = {}
        self._warm_up = warm_up
        self._warming: asyncio.Task[None] | None = None
        self._prefills: set[asyncio.Task[None]] = set()

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
        """Check plugins, open the store, resolve models, build actions and providers.

        If any of it fails, what was opened is closed again before the error propagates.
        """
        if self._started:
            return
        check_plugins(self.character, self.host.plugins, source=self.character.name)
        pace_collector(self.settings.gc_gen0_threshold)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self._store is None:
            self._store = await self.host.open_store()
        self._steps = StepLog(self._store, self.agent_id, ttl_s=self.settings.lease_ttl_s)
        for model_class in ModelClass:
            self._chains[model_class] = self._resolve_chain(model_class)
        self._actions = ActionTable(
            {e.name: e.factory() for e in self.host.actions},
            [e.factory() for e in self.host.action_sources],
        )
        self._providers = sorted(
            (e.factory() for e in self.host.providers),
            key=lambda p: p.position,
        )
        self._evaluators = [e.factory() for e in self.host.evaluators]
        executor_name = (
            self.settings.executor
            or self.host.choose(
                "carrier_choose_executor", runtime=self, available=self.host.executors.names()
            )
            or "inprocess"
        )
        self._executor = self.host.executors.create(executor_name)
        components: list[Action | ActionSource | Provider | Evaluator] = [
            *self._actions.by_name.values(),
            *self._actions.sources,
            *self._providers,
            *self._evaluators,
        ]
        for component in components:
            try:
                await component.setup(self)
            except ConfigurationError:
                raise  # a setting the operator must fix: never start half-configured
            except Exception:
                logger.exception(
                    "setup() of %r failed; it stays in service", type(component).__name__
                )
        self._actions.refresh()  # what the sources found while starting
        await self.store.upsert_agent(
            self.agent_id, self.character.name, {"username": self.character.username}
        )
        names = [n for n in (self.character.name, self.character.username) if n]
        await self.store.upsert_entity(
            Entity(id=self.agent_id, agent_id=self.agent_id, names=names)
        )
        if self._warm_up:
            from carrier.warming import warm_up

            self._warming = asyncio.create_task(warm_up(self, self._chains, self._persona))
            # let it start: a model's warm-up, once begun, makes requests wait for it, so a
            # message sent right after start is answered from the warmed cache
            await asyncio.sleep(0)
        self._started = True

    async def warmed(self) -> None:
        """Wait until the background warm-up of the models is over, and the prefills of
        rooms' next prefixes in flight (``carrier.lookahead``); at once when there are
        none. A failed warm-up was logged and raises nothing here."""
        if self._warming is not None:
            await asyncio.shield(self._warming)
        if self._prefills:
            await asyncio.wait(set(self._prefills))

    async def stop(self) -> None:
        """Close the executor, the action sources, the models and the store (if this
        runtime opened it)."""
        if self._warming is not None:  # the models wait for their own warm-up to end
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
            self._warming = None
        for prefill in list(self._prefills):  # a model waits for its own work to end
            prefill.cancel()
        if self._prefills:
            await asyncio.wait(set(self._prefills))
        if self._executor is not None:
            await self._executor.aclose()
        await self._actions.aclose()
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
                links.append(entry.factory(self.plugin_settings(entry.settings), **kwargs))
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

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise CarrierError("The runtime is not started; use 'async with AgentRuntime(...)'.")
        return self._executor

    @property
    def actions(self) -> ActionTable:
        return self._actions

    @property
    def approvals(self) -> Approvals:
        """Pending and decided approvals of this agent (docs/approvals.md)."""
        from carrier.approvals import Approvals

        return Approvals(self)

    @property
    def choices(self) -> Choices:
        """Questions put to rooms, resolved by an allowed user's answer (docs/tasks.md)."""
        from carrier.choices import Choices

        return Choices(self)

    @property
    def tasks(self) -> Tasks:
        """This agent's scheduled tasks and their runs (docs/tasks.md)."""
        from carrier.tasks import Tasks

        return Tasks(self)

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
        ``message_sent``. When the room belongs to an installed client (its ``source``
        names one), a :class:`~carrier.outbox.Deliveries` entry asks that client to
        deliver it, from whichever process serves it."""
        memory = Memory(
            agent_id=self.agent_id,
            entity_id=self.agent_id,
            room_id=room_id,
            content=content.model_copy(update={"in_reply_to": in_reply_to}),
            metadata={"sent": True},
        )
        await self.store.create_memory(memory)
        room = await self.store.get_room(room_id)
        if room is not None and room.source in self.host.clients:
            from carrier.outbox import Deliveries

            await Deliveries(self.store, room.source, self.agent_id).add(room_id, memory.id)
        await self.emit(EventType.MESSAGE_SENT, memory, responses=1, room_id=room_id)
        return memory

    async def provide(self, name: str, message: Memory, state: State) -> ProviderOutput | None:
        """Run the provider ``name`` now — a dynamic one included — and add its section
        to ``state.providers`` (what an action calls to fetch more context before a
        further step). Returns its output, or ``None`` if it failed or timed out (the
        failure is logged and emitted as ``provider_failed``).

        Raises:
            UnknownNameError: No provider of that name is registered.
        """
        from carrier.plugin_calls import run_providers

        provider = next((p for p in self._providers if p.name == name), None)
        if provider is None:
            raise UnknownNameError("provider", name, [p.name for p in self._providers])
        await run_providers(self, [provider], message, state, dynamic=True)
        return state.providers.get(name)

    @overload
    def plugin_settings(self, namespace: str) -> Any: ...
    @overload
    def plugin_settings(self, namespace: str, settings_class: type[_S]) -> _S: ...
    def plugin_settings(self, namespace: str, settings_class: type[Any] | None = None) -> Any:
        """This agent's settings of a plugin: ``CARRIER_<NAMESPACE>_*`` variables and
        ``.env``, overridden by the character's ``settings``/``secrets`` named
        ``<NAMESPACE>_<FIELD>`` (``{"settings": {"WEATHER_UNITS": "imperial"}}``).
        Validated once per runtime and cached: call it wherever a value is needed.

        Args:
            namespace: The namespace the plugin declared in ``carrier_add_settings``.
            settings_class: The class, for a typed result; it is declared here if no
                plugin declared ``namespace`` (a plugin used without its hooks).

        Raises:
            ConfigurationError: A value is invalid; the message names the variable
                or the character's setting.
            UnknownNameError: ``namespace`` was never declared and no class was given.
            PluginContractError: The declared class is not ``settings_class``, or
                reads another prefix than ``CARRIER_<NAMESPACE>_``.
        """
        found = self._plugin_settings.get(namespace)
        if found is None:
            registry = self.host.settings
            if settings_class is not None and namespace not in registry:
                registry.add(namespace, settings_class)
            found = registry.for_character(
                namespace, self.character.all_secrets(), character=self.character.name
            )
            self._plugin_settings[namespace] = found
        if settings_class is not None and not isinstance(found, settings_class):
            raise PluginContractError(
                f"Settings namespace {namespace!r} holds {type(found).__qualname__}, "
                f"not {settings_class.__qualname__}: two plugins claim the namespace?"
            )
        return found

    def plugin_state(self, namespace: str) -> PluginState:
        """A plugin's own keys in this agent's store, with atomic operations
        (see :class:`carrier.plugin_state.PluginState`); needs a started runtime."""
        return PluginState(self.store, namespace, self.agent_id)

    async def set_participant_state(
        self, room_id: str, entity_id: str, state: ParticipantState
    ) -> None:
        """Follow, mute or reset a participant's state (the agent's own, usually)."""
        await self.store.set_participant_state(room_id, entity_id, state)
        self._actors.pop(room_id, None)

    # ---- entry points ----------------------------------------------------------------

    async def handle(
        self, incoming: IncomingMessage, *, on_text: TextCallback | None = None
    ) -> Reply:
        """Handle a message through the executor (the way clients should call)."""
        return await self.executor.submit(self, incoming, on_text=on_text)

    async def run_autonomous(
        self,
        goal: str | Goal,
        *,
        max_steps: int = 10,
        on_step: Callable[[int, Reply, Goal], Awaitable[None]] | None = None,
        role: Role | None = None,
    ) -> AutonomousRun:
        """Work toward ``goal`` without user messages until it is done or the budget is
        spent, acting with ``role`` (default: the goal's recorded role, else MEMBER)."""
        from carrier.autonomy import run_autonomous

        return await run_autonomous(self, goal, max_steps=max_steps, on_step=on_step, role=role)


@asynccontextmanager
async def open_agents(
    host: PluginHost, characters: Sequence[Character | str | Path | None] = ()
) -> AsyncIterator[list[AgentRuntime]]:
    """Start one runtime per character on one store they share (what ``carrier serve``
    and ``carrier worker`` host), recover what a crash left unfinished
    (``CARRIER_RECOVER_ON_START``); stop them and close the store on exit.

    Args:
        host: The plugin host.
        characters: Characters or files; none means ``CARRIER_CHARACTER`` or the default.

    Raises:
        ConfigurationError: Two characters have the same agent id.
    """
    async with AsyncExitStack() as stack:
        store = await host.open_store()
        stack.push_async_callback(store.close)
        runtimes: list[AgentRuntime] = []
        for character in characters or [None]:
            runtime = AgentRuntime(character, host=host, store=store)
            await stack.enter_async_context(runtime)
            clash = next((r for r in runtimes if r.agent_id == runtime.agent_id), None)
            if clash is not None:
                raise ConfigurationError(
                    f"Two characters have the agent id {runtime.agent_id!r} "
                    f"({clash.character.name!r} and {runtime.character.name!r}); give each "
                    f"agent its own 'id' or name."
                )
            runtimes.append(runtime)
        for runtime in runtimes:  # what a crash of an earlier run left unfinished
            await runtime.recover_at_start()
        yield runtimes
