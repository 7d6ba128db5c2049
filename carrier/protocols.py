"""The interfaces plugins implement: Model, MemoryStore, Action, Provider, Evaluator,
Executor, Client and Command.

They are abstract base classes so that optional capabilities have defaults and a
missing one fails with a message naming the class. The runtime talks only to these.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

from carrier.errors import StoreError
from carrier.services import Client  # re-exported: plugins import it from here
from carrier.types import (
    ActionResult,
    ActionSpec,
    Entity,
    EvaluatorResult,
    Goal,
    GoalStatus,
    IncomingMessage,
    Memory,
    MemoryType,
    ModelRequest,
    ModelResponse,
    Participant,
    ParticipantState,
    ProviderOutput,
    Reply,
    Role,
    Room,
    ScoredMemory,
    SearchScope,
    State,
    StreamChunk,
    Task,
)

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime

__all__ = [
    "Action",
    "ActionFactory",
    "Client",
    "Command",
    "Evaluator",
    "Executor",
    "MemoryStore",
    "Model",
    "ModelFactory",
    "Provider",
    "StoreFactory",
]


# ---- Models ---------------------------------------------------------------------


class Model(ABC):
    """A model backend: generates text and action calls, optionally streams and embeds.

    Backends without native tool calling answer ``request.actions`` through the JSON
    protocol in :mod:`carrier.prompts` (``action_response_schema`` and
    ``parse_action_response``), so callers always get ``ModelResponse.action_calls``.
    """

    #: ``"backend:model"``, shown in events and errors.
    name: str = "model"
    #: Tokens the model can attend to; the prompt is trimmed to fit. ``None``: unknown.
    context_window: int | None = None
    #: Dimension of :meth:`embed`'s vectors, or ``None`` if the model does not embed.
    embedding_dimension: int | None = None
    #: Whether the model chooses actions (native tool calls or constrained JSON). When
    #: the large model does not, the runtime offers no action and it only replies.
    calls_actions: bool = True

    @abstractmethod
    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request``. Raise ``TransientModelError`` or ``ModelRejectedError``.

        The request's chat messages may be shared with later requests (the runtime
        keeps history turns between prompts): treat them as read-only.
        """

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas, then one chunk carrying the final ``ModelResponse``.

        The default generates the whole answer and yields it as one delta.
        """
        response = await self.generate(request)
        if response.text:
            yield StreamChunk(text=response.text)
        yield StreamChunk(response=response)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized vector per text."""
        raise NotImplementedError(
            f"{type(self).__name__} does not produce embeddings; configure an embedding "
            f"model with CARRIER_MODEL_EMBEDDING."
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; the default estimates four characters per token."""
        return len(text) // 4 + 1

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections, threads and weights."""


#: ``factory(settings, **overrides) -> Model`` when registered with a settings
#: namespace, else ``factory(**overrides)``. ``model=`` carries the model id of a
#: spec such as ``openai:gpt-4.1-mini``.
ModelFactory = Callable[..., Model]


# ---- Memory store -----------------------------------------------------------------


class MemoryStore(ABC):
    """Durable records of one or many agents: entities, rooms, memories, goals, ...

    Every method is safe to call concurrently. ``create_memory`` is idempotent by id.
    Stores are async context managers; ``open`` creates or migrates the schema.
    Memories a store returns may be the very objects it keeps (the builtin store's,
    the SQL store's cache): treat them as read-only; ``model_copy(update=...)`` makes
    a changed one.
    """

    #: URL the store was opened with, secrets removed.
    url: str = ""

    async def open(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Connect and create or migrate the schema."""

    async def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    @abstractmethod
    def embedding_dimension(self) -> int | None:
        """Dimension of the embeddings stored so far; ``None`` until the first one."""

    # agents and entities
    @abstractmethod
    async def upsert_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        """Record an agent (a character) by id."""

    @abstractmethod
    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's record: ``{"id", "name", "data"}``, or ``None``."""

    @abstractmethod
    async def upsert_entity(self, entity: Entity) -> None:
        """Create or replace an entity."""

    @abstractmethod
    async def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        """The entities among ``entity_ids`` that exist, in no particular order."""

    # rooms and participants
    @abstractmethod
    async def upsert_room(self, room: Room) -> None:
        """Create or replace a room."""

    @abstractmethod
    async def get_room(self, room_id: str) -> Room | None:
        """The room, or ``None``."""

    @abstractmethod
    async def create_room(self, room: Room) -> bool:
        """Create ``room`` unless a room with its id exists; ``True`` if this call
        created it. Atomic: of two concurrent calls for one id exactly one returns
        ``True`` and the stored room is that call's (its ``owner_id`` included)."""

    @abstractmethod
    async def upsert_participant(self, participant: Participant) -> None:
        """Add an entity to a room, or update its state and role."""

    @abstractmethod
    async def get_participants(self, room_id: str) -> list[Participant]:
        """Everyone in the room."""

    @abstractmethod
    async def get_rooms_for_entity(self, entity_id: str) -> list[str]:
        """Ids of the rooms the entity takes part in."""

    async def set_participant_state(
        self, room_id: str, entity_id: str, state: ParticipantState
    ) -> None:
        """Follow, mute or reset the entity's state in the room."""
        current = {p.entity_id: p for p in await self.get_participants(room_id)}
        participant = current.get(entity_id) or Participant(room_id=room_id, entity_id=entity_id)
        await self.upsert_participant(participant.model_copy(update={"state": state}))

    async def get_participant(self, room_id: str, entity_id: str) -> Participant | None:
        """One participant of the room, or ``None``."""
        for participant in await self.get_participants(room_id):
            if participant.entity_id == entity_id:
                return participant
        return None

    # memories
    @abstractmethod
    async def create_memory(self, memory: Memory) -> bool:
        """Store ``memory``. Returns ``False`` (and changes nothing) if its id exists.

        Raises ``EmbeddingDimensionError`` when the embedding's dimension differs
        from the recorded one.
        """

    @abstractmethod
    async def get_memory(self, memory_id: str) -> Memory | None:
        """The memory with that id, or ``None``."""

    @abstractmethod
    async def get_memories(
        self,
        *,
        agent_id: str,
        room_id: str | None = None,
        entity_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 50,
        before: float | None = None,
        scope: SearchScope | None = None,
    ) -> list[Memory]:
        """The newest ``limit`` matching memories created before ``before``, oldest first.

        With ``scope``, only memories that ``scope.allows`` (a prompt's reads pass one;
        ``None`` reads the agent's whole memory, for tools and operators).
        """

    @abstractmethod
    async def count_memories(
        self, *, agent_id: str, room_id: str | None = None, type: MemoryType | None = None
    ) -> int:
        """How many memories match."""

    @abstractmethod
    async def delete_memory(self, memory_id: str) -> bool:
        """Delete one memory; ``False`` if it did not exist."""

    @abstractmethod
    async def search_memories(
        self,
        *,
        agent_id: str,
        embedding: Sequence[float],
        room_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 10,
        threshold: float = 0.0,
        entity_id: str | None = None,
        scope: SearchScope | None = None,
    ) -> list[ScoredMemory]:
        """Top ``limit`` memories by cosine similarity ≥ ``threshold``, best first.

        ``entity_id`` keeps only memories of that entity (its messages, facts about
        it). With ``scope``, only memories that ``scope.allows``; a scoped search
        returns the same top ``limit`` as filtering an unscoped one would, and
        should cost no more than it.

        Raises ``EmbeddingDimensionError`` when ``embedding`` has the wrong dimension.
        """

    @abstractmethod
    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        """Messages to the agent with no stored response (id ``"{id}-{agent_id}"``),
        oldest first: the work a crash left behind."""

    # goals
    @abstractmethod
    async def upsert_goal(self, goal: Goal) -> None:
        """Create or replace a goal."""

    @abstractmethod
    async def get_goal(self, goal_id: str) -> Goal | None:
        """The goal, or ``None``."""

    @abstractmethod
    async def get_goals(
        self, *, agent_id: str, room_id: str | None = None, status: GoalStatus | None = None
    ) -> list[Goal]:
        """Goals of the agent (optionally of one room, one status), oldest first."""

    # tasks
    @abstractmethod
    async def upsert_task(self, task: Task) -> None:
        """Create or replace a task."""

    @abstractmethod
    async def get_tasks(self, *, agent_id: str, tags: Sequence[str] = ()) -> list[Task]:
        """Tasks of the agent carrying every tag in ``tags``, by due time."""

    @abstractmethod
    async def delete_task(self, task_id: str) -> bool:
        """Delete one task; ``False`` if it did not exist."""

    # cache and logs
    @abstractmethod
    async def get_cache(self, key: str) -> Any:
        """The JSON value under ``key``, or ``None`` if absent or expired."""

    @abstractmethod
    async def set_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store a JSON-serializable value, optionally expiring after ``ttl_s``."""

    @abstractmethod
    async def delete_cache(self, key: str) -> bool:
        """Delete a cache entry; ``False`` if it did not exist."""

    # The cache is also the store's key-value primitive for coordination between
    # processes (leases, recorded steps, plugin state): the three calls below are
    # atomic, and values compare as JSON (``{"a": 1}`` equals ``{"a": 1}``).

    async def add_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` under ``key`` only if the key is absent or expired; ``True``
        if this call stored it (of concurrent calls for one key, exactly one).

        The default is not atomic across processes: a store shared by processes
        overrides it (and the two below) with one atomic statement.
        """
        if await self.get_cache(key) is not None:
            return False
        await self.set_cache(key, value, ttl_s=ttl_s)
        return True

    async def compare_and_set_cache(
        self, key: str, expected: Any, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        """Replace the live value ``expected`` by ``value`` (``None`` deletes the entry),
        atomically; ``False`` and nothing changed if the key holds anything else (or
        nothing: use :meth:`add_cache` to create)."""
        current = await self.get_cache(key)
        if current is None or current != expected:
            return False
        if value is None:
            await self.delete_cache(key)
        else:
            await self.set_cache(key, value, ttl_s=ttl_s)
        return True

    async def increment_cache(
        self, key: str, amount: int = 1, *, ttl_s: float | None = None
    ) -> int:
        """Add ``amount`` to the integer under ``key`` (an absent or expired key counts
        as 0) and return the new value, atomically. ``ttl_s`` applies when the key is
        created. Raises ``StoreError`` if the key holds something other than an integer."""
        current = await self.get_cache(key)
        if current is None:
            await self.set_cache(key, amount, ttl_s=ttl_s)
            return amount
        if not isinstance(current, int) or isinstance(current, bool):
            raise StoreError(
                f"Cache key {key!r} holds {type(current).__name__}, not an integer; "
                f"increment_cache needs an integer (or an absent key)."
            )
        await self.set_cache(key, current + amount)  # keeps no expiry: override to keep it
        return current + amount

    @abstractmethod
    async def list_cache(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        """Live entries whose key starts with ``prefix``, by key: ``(key, value)``."""

    @abstractmethod
    async def log(
        self, *, agent_id: str, room_id: str | None, type: str, body: dict[str, Any]
    ) -> None:
        """Append a log entry (actions run, errors, model use)."""

    @abstractmethod
    async def get_logs(
        self, *, agent_id: str, room_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest log entries last: ``{"type", "room_id", "body", "created_at"}``."""


#: ``factory(url, **options) -> MemoryStore``, registered under a URL scheme.
StoreFactory = Callable[..., MemoryStore]


# ---- Actions, providers, evaluators -------------------------------------------------


class Action(ABC):
    """Something the agent can do, chosen by the model.

    ``parameters`` is a pydantic model; the model's arguments are validated against
    it before ``handler`` runs. ``required_role`` refuses callers below that role.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    similes: ClassVar[tuple[str, ...]] = ()
    examples: ClassVar[list[list[dict[str, Any]]]] = []
    parameters: ClassVar[type[BaseModel] | None] = None
    required_role: ClassVar[Role | None] = None

    async def setup(self, runtime: AgentRuntime) -> None:  # noqa: B027 - optional hook
        """Prepare for ``runtime`` when it starts (ingest data, warm caches).

        Runs once per runtime, before the first message. A ``ConfigurationError``
        stops the runtime's start (a setting the operator must fix); any other failure
        is logged and leaves the object in service.
        """

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        """Whether the action may be offered and run for this message."""
        return True

    @abstractmethod
    async def handler(
        self,
        runtime: AgentRuntime,
        message: Memory,
        state: State,
        arguments: BaseModel | None,
    ) -> ActionResult | None:
        """Do the work. Raise ``ToolRetry`` to ask the model to try again."""

    def spec(self) -> ActionSpec:
        """The action as offered to a model (built once: a JSON schema is costly)."""
        cached: ActionSpec | None = self.__dict__.get("_carrier_spec")
        if cached is None:
            schema: dict[str, Any] = (
                self.parameters.model_json_schema()
                if self.parameters is not None
                else {"type": "object", "properties": {}}
            )
            cached = ActionSpec(name=self.name, description=self.description, parameters=schema)
            self.__dict__["_carrier_spec"] = cached
        return cached


#: ``factory() -> Action``; an ``Action`` subclass is a factory.
ActionFactory = Callable[[], Action]


class Provider(ABC):
    """Adds a section to the state. Runs concurrently with the others, under a timeout.

    ``get`` starts eagerly in the message's task (``carrier.eager``): a provider that
    never waits costs no task of its own.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Seconds before the provider is abandoned for this message.
    timeout_s: ClassVar[float] = 2.0
    #: Dynamic providers run only when an action or template asks for them.
    dynamic: ClassVar[bool] = False
    #: Order of the section in the prompt; lower first.
    position: ClassVar[int] = 0
    #: Token budget of the provider's text; the kernel trims longer output.
    max_tokens: ClassVar[int | None] = None
    #: Whether the text is the agent's own instructions (its character, the time, the
    #: action catalogue). Anything holding text from users, documents or tools must stay
    #: ``False`` (the default): the prompt puts it in a labelled data section, after the
    #: instructions, that the model is told never to obey.
    trusted: ClassVar[bool] = False

    async def setup(self, runtime: AgentRuntime) -> None:  # noqa: B027 - optional hook
        """Prepare for ``runtime`` when it starts (ingest data, warm caches).

        Runs once per runtime, before the first message. A ``ConfigurationError``
        stops the runtime's start (a setting the operator must fix); any other failure
        is logged and leaves the object in service.
        """

    @abstractmethod
    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        """Compute this provider's output for the message."""


class Evaluator(ABC):
    """Runs after the agent acted: extracts facts, tracks goals, reflects."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Run even when the agent did not reply.
    always_run: ClassVar[bool] = False
    timeout_s: ClassVar[float] = 30.0

    async def setup(self, runtime: AgentRuntime) -> None:  # noqa: B027 - optional hook
        """Prepare for ``runtime`` when it starts (ingest data, warm caches).

        Runs once per runtime, before the first message. A ``ConfigurationError``
        stops the runtime's start (a setting the operator must fix); any other failure
        is logged and leaves the object in service.
        """

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        """Whether to run for this exchange."""
        return True

    @abstractmethod
    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult | None:
        """Evaluate the exchange."""


# ---- Execution, clients, commands ---------------------------------------------------


class Executor(ABC):
    """Decides how a message's steps run: in-process, or durably across workers."""

    name: str = "executor"

    @abstractmethod
    async def submit(
        self,
        runtime: AgentRuntime,
        incoming: IncomingMessage,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Reply:
        """Handle the message, keeping the messages of one room in order.

        ``on_text`` receives streamed text deltas; an executor that runs the
        message elsewhere may ignore it.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Wait for or hand over work in flight, then release resources."""


class Command(ABC):
    """A sub-command of the ``carrier`` CLI added by a plugin."""

    #: One line for ``carrier --help``.
    help: str = ""

    def configure(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - optional
        """Add the command's arguments."""

    @staticmethod
    def add_characters_argument(parser: argparse.ArgumentParser) -> None:
        """Add ``CHARACTER ...``: the character files of a command that hosts many
        agents (``args.characters``; none means CARRIER_CHARACTER or the builtin)."""
        parser.add_argument(
            "characters",
            nargs="*",
            metavar="CHARACTER",
            help="Character files (default: CARRIER_CHARACTER or the builtin 'Nova').",
        )

    @abstractmethod
    def run(self, args: argparse.Namespace, host: PluginHost) -> int | Awaitable[int]:
        """Run it; return the exit status. May be ``async def``."""
