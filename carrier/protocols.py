"""The interfaces plugins implement: Model, MemoryStore, Action, Provider, Evaluator,
Executor, Client and Command.

They are abstract base classes so that optional capabilities have defaults and a
missing one fails with a message naming the class. The runtime talks only to these.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from carrier.services import Client  # re-exported: plugins import it from here
from carrier.stores import MemoryStore, StoreFactory, TurnReads  # re-exported, as Client
from carrier.types import (
    ActionResult,
    ActionSpec,
    EvaluatorResult,
    IncomingMessage,
    Memory,
    ModelRequest,
    ModelResponse,
    ProviderOutput,
    Reply,
    Role,
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
    "ActionSource",
    "ActionSourceFactory",
    "Client",
    "Command",
    "Evaluator",
    "Executor",
    "MemoryStore",
    "Model",
    "ModelFactory",
    "Provider",
    "StoreFactory",
    "TaskWorker",
    "TaskWorkerFactory",
    "TurnReads",
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
    #: ``"backend:model"`` of what :meth:`embed` runs, when that is another model than
    #: ``name`` (the local backend chats with SmolLM2 and embeds with MiniLM); ``None``:
    #: ``name``. Shown in ``model_warmed`` events and by ``carrier -v chat``.
    embedding_name: str | None = None
    #: Whether the model chooses actions (native tool calls or constrained JSON). When
    #: the large model does not, the runtime offers no action and it only replies.
    calls_actions: bool = True
    #: A small model (a few hundred million parameters, such as the default local
    #: SmolLM2-135M): prompts stay short and evaluators that need reasoning are off.
    small: bool = False

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

    async def warm_up(self, prefix: ModelRequest) -> None:  # noqa: B027 - optional hook
        """Get ready for the requests of ``prefix.model_class`` (load weights, open
        sessions) and, for a chat model, process ``prefix`` so a prompt cache holds it.

        The runtime calls it in the background when it starts (``carrier.warming``):
        for ``large``, ``prefix.system`` is the start of every system prompt it will
        send (the agent's persona, nothing of any user) and there are no messages; for
        ``embedding`` the request is empty. A request that arrives meanwhile should
        wait for the warm-up rather than load twice. A failure is logged and never
        stops the runtime; the first request reports it again. The default does nothing.
        """

    async def prefill(self, prefix: ModelRequest) -> None:  # noqa: B027 - optional hook
        """Process ``prefix``, the stable start of a room's next request, so a prompt
        cache holds it before that request comes (:mod:`carrier.lookahead`).

        The runtime calls it in the background after each answer of the large model:
        ``prefix`` has the system prompt, the offered actions and the room's history
        with the answer just given (``metadata`` has ``room_id``, ``history_ids`` and
        ``prefix_messages``), and no new message. A model may skip it (while busy
        with a request, say); it must not delay a request by more than its own work.
        Errors are logged, never raised to a user. The default does nothing: hosted
        APIs cache the prefix of the request itself.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections, threads and weights."""


#: ``factory(settings, **overrides) -> Model`` when registered with a settings
#: namespace, else ``factory(**overrides)``. ``model=`` carries the model id of a
#: spec such as ``openai:gpt-4.1-mini``.
ModelFactory = Callable[..., Model]


# ---- Actions, providers, evaluators -------------------------------------------------


class Action(ABC):
    """Something the agent can do, chosen by the model.

    ``parameters`` is a pydantic model; the model's arguments are validated against
    it before ``handler`` runs. ``required_role`` refuses callers below that role.

    ``requires_approval`` (or :meth:`needs_approval`, a predicate over the validated
    arguments and the sender) makes a person approve each call before it runs
    (docs/approvals.md): a user with ``approver_role`` or above, within
    ``approval_expires_s`` seconds, after which ``approval_default`` applies.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    similes: ClassVar[tuple[str, ...]] = ()
    examples: ClassVar[list[list[dict[str, Any]]]] = []
    parameters: ClassVar[type[BaseModel] | None] = None
    required_role: ClassVar[Role | None] = None
    requires_approval: ClassVar[bool] = False
    approver_role: ClassVar[Role] = Role.ADMIN
    approval_expires_s: ClassVar[float | None] = 24 * 3600.0
    approval_default: ClassVar[str] = "reject"

    async def setup(self, runtime: AgentRuntime) -> None:  # noqa: B027 - optional hook
        """Prepare for ``runtime`` when it starts (ingest data, warm caches).

        Runs once per runtime, before the first message. A ``ConfigurationError``
        stops the runtime's start (a setting the operator must fix); any other failure
        is logged and leaves the object in service.
        """

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        """Whether the action may be offered and run for this message."""
        return True

    def needs_approval(self, arguments: BaseModel | None, *, sender_id: str, role: Role) -> bool:
        """Whether this call waits for a person's approval; ``requires_approval`` unless
        overridden (a predicate over the validated ``arguments`` and the sender)."""
        return self.requires_approval

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


class ActionSource(ABC):
    """Actions that come and go while the agent runs (an MCP server's tools).

    Registered with ``carrier_register_action_sources``; the kernel makes one per
    runtime, calls :meth:`setup` when the runtime starts and :meth:`aclose` when it
    stops. Each turn it reads :attr:`version` of every source and calls
    :meth:`actions` again only when a version changed since the last turn, so a source
    that did not change costs one attribute read per turn. The actions it returns are
    offered, role-checked, validated and run exactly like registered ones; a name
    already taken by a registered action (or an earlier source) is skipped with a
    warning.
    """

    name: ClassVar[str]
    #: Bump it (``self.version += 1``) whenever :meth:`actions` would return something
    #: else; the kernel compares it with the version it last read.
    version: int = 0

    async def setup(self, runtime: AgentRuntime) -> None:  # noqa: B027 - optional hook
        """Start for ``runtime`` (connect, list what is there). A ``ConfigurationError``
        stops the runtime's start; any other failure is logged and the source stays,
        offering what :meth:`actions` returns."""

    @abstractmethod
    def actions(self) -> Sequence[Action]:
        """The actions to offer now. Plain ``def``: return what is already known, never
        wait for I/O here (refresh in the background and bump :attr:`version`)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release what :meth:`setup` opened (the runtime is stopping)."""


#: ``factory() -> ActionSource``; an ``ActionSource`` subclass is a factory.
ActionSourceFactory = Callable[[], ActionSource]


class TaskWorker(ABC):
    """Runs scheduled tasks of one kind (docs/tasks.md): registered by name with
    ``carrier_register_task_workers``; a :class:`~carrier.types.Task` names it in
    ``worker``. A fresh instance (``factory()``) runs each due run."""

    @abstractmethod
    async def execute(self, runtime: AgentRuntime, task: Task) -> None:
        """Do the task's work once. Raising fails this run: it is retried with backoff
        until ``task.max_attempts``, then the task is marked failed."""


#: ``factory() -> TaskWorker``; a ``TaskWorker`` subclass is a factory.
TaskWorkerFactory = Callable[[], TaskWorker]


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
    #: Whether the text stays the same from one message to the next (the action
    #: catalogue, a fixed sample of examples): it goes in the prompt's stable prefix,
    #: before the history, which prompt caches reuse. Otherwise (the default) it goes
    #: after the history, with the new message (``carrier.layout``).
    stable: ClassVar[bool] = False

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
    #: Needs a capable model (judging goal progress, summarizing): off when the large
    #: model is a small one (``Model.small``, such as the default local SmolLM2-135M).
    needs_capable_model: ClassVar[bool] = False

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
