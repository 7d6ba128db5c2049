"""Hook specifications: the whole contract between the kernel and its plugins.

Four kinds of hook, all prefixed ``carrier_``:

* ``carrier_register_<kinds>(<kinds>)`` — sync, once per host; call ``.add(name, factory)``.
* ``carrier_add_settings(settings)`` — historic; declare a pydantic-settings class.
* ``carrier_choose_<x>(...)`` — ``firstresult``, **sync only**: the first non-``None`` wins.
* ``carrier_on_event(event)`` — observers; may be ``async def``; awaited concurrently.

Async work lives in the methods of registered objects, never in hook wrappers.
Specs may gain parameters but never lose or rename one. Every hook is documented
here and in ``docs/hooks.md`` (a test fails when they disagree).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from carrier.protocols import (
        Action,
        ActionSource,
        Client,
        Command,
        Evaluator,
        Executor,
        MemoryStore,
        Model,
        Provider,
        TaskWorker,
    )
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.settings import SettingsRegistry
    from carrier.types import (
        Event,
        IncomingMessage,
        Memory,
        ModelClass,
        Participant,
        RespondDecision,
        Room,
        Task,
    )

hookspec = pluggy.HookspecMarker("carrier")

# ---- Startup: sync, once per PluginHost -----------------------------------------------


@hookspec(historic=True)
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare a plugin's settings class with ``settings.add(namespace, SettingsClass)``.

    Runs when the plugin is registered (historic: plugins registered later are
    called too). The class is validated lazily, the first time the namespace is
    needed, so a missing API key fails when the model is used, not at start-up.

    :param settings: The host's ``SettingsRegistry``.
    :return: Nothing.
    """


@hookspec
def carrier_register_models(models: Registry[Model]) -> None:
    """Offer model backends with ``models.add(name, factory, settings=namespace)``.

    The factory receives the validated settings object of ``namespace`` (if given),
    then keyword overrides, among them ``model=`` (the id after the colon of a spec
    like ``openai:gpt-4.1-mini``); it returns a ``Model``. Import SDKs inside it.

    :param models: The host's model registry. A name added twice by two plugins
        raises ``PluginContractError`` naming both distributions.
    :return: Nothing.
    """


@hookspec
def carrier_register_actions(actions: Registry[Action]) -> None:
    """Offer actions with ``actions.add(NAME, ActionSubclass)``.

    :param actions: The host's action registry; a factory takes no argument and
        returns an ``Action``.
    :return: Nothing.
    """


@hookspec
def carrier_register_action_sources(action_sources: Registry[ActionSource]) -> None:
    """Offer sources of actions that come and go at run time (an MCP server's tools)
    with ``action_sources.add(name, ActionSourceSubclass)``.

    The kernel makes one source per runtime, awaits its ``setup(runtime)`` at start and
    its ``aclose()`` at stop, and each turn asks it for its actions only when its
    ``version`` changed (see ``carrier.protocols.ActionSource``).

    :param action_sources: The host's action-source registry; a factory takes no
        argument and returns an ``ActionSource``.
    :return: Nothing.
    """


@hookspec
def carrier_register_task_workers(task_workers: Registry[TaskWorker]) -> None:
    """Offer workers of scheduled tasks with ``task_workers.add(name, TaskWorkerSubclass)``.

    A task (``runtime.tasks.schedule(..., worker=name)``) names its worker; when a run
    is due, the kernel's scheduler (or a ``carrier worker`` job) makes a fresh worker
    with ``factory()`` and awaits ``execute(runtime, task)`` once per due run; an
    exception is a failed run, retried with backoff (docs/tasks.md).

    :param task_workers: The host's task-worker registry; a factory takes no argument
        and returns a ``TaskWorker``.
    :return: Nothing.
    """


@hookspec
def carrier_register_providers(providers: Registry[Provider]) -> None:
    """Offer state providers with ``providers.add(name, ProviderSubclass)``.

    :param providers: The host's provider registry.
    :return: Nothing.
    """


@hookspec
def carrier_register_evaluators(evaluators: Registry[Evaluator]) -> None:
    """Offer evaluators with ``evaluators.add(name, EvaluatorSubclass)``.

    :param evaluators: The host's evaluator registry.
    :return: Nothing.
    """


@hookspec
def carrier_register_stores(stores: Registry[MemoryStore]) -> None:
    """Offer memory stores keyed by URL scheme: ``stores.add("sqlite", factory)``.

    The factory is called as ``factory(url)`` (plus the settings object first when
    registered with ``settings=``) and returns an unopened ``MemoryStore``.

    :param stores: The host's store registry.
    :return: Nothing.
    """


@hookspec
def carrier_register_executors(executors: Registry[Executor]) -> None:
    """Offer executors, which decide how a message's steps run.

    :param executors: The host's executor registry; ``factory()`` returns an
        ``Executor``. The builtin ``"inprocess"`` executor is the default.
    :return: Nothing.
    """


@hookspec
def carrier_register_clients(clients: Registry[Client]) -> None:
    """Offer platform clients (chat platforms, MCP sessions): long-lived services that
    ``carrier start`` runs under a supervisor for the agents that enable them — one
    instance per key ``Client.select`` returns, ``Client.run`` serving until
    cancelled, a crashed instance replaced by a fresh one after a backoff (see
    ``carrier.services`` and docs/clients.md).

    :param clients: The host's client registry; ``factory()`` returns a ``Client``
        (``factory(settings)`` when registered with ``settings=``).
    :return: Nothing.
    """


@hookspec
def carrier_register_commands(commands: Registry[Command]) -> None:
    """Add sub-commands to the ``carrier`` CLI: ``commands.add("serve", ServeCommand,
    description="...")``.

    The description is shown by ``carrier --help``; the factory is only called
    when the command runs, so keep heavy imports inside it.

    :param commands: The host's command registry.
    :return: Nothing.
    """


# ---- Per message: decisions (firstresult, sync only) ----------------------------------


@hookspec(firstresult=True)
def carrier_choose_model(
    runtime: AgentRuntime, model_class: ModelClass, available: Sequence[str]
) -> str | None:
    """Pick the model spec that serves a request of ``model_class``.

    Return a spec such as ``"anthropic:claude-sonnet-4-5"`` (a fallback chain may
    be written ``"a -> b -> c"``), or ``None`` to defer to the settings
    (``CARRIER_MODEL_LARGE`` ...) and the defaults. Stops at the first non-``None``
    result. Must be a plain ``def``.

    :param runtime: The agent's runtime.
    :param model_class: ``small``, ``large`` or ``embedding``.
    :param available: Names of the registered model backends.
    :return: A model spec, or ``None``.
    """


@hookspec(firstresult=True)
def carrier_choose_should_respond(
    runtime: AgentRuntime, message: Memory, room: Room, participant: Participant | None
) -> RespondDecision | None:
    """Decide whether the agent answers ``message``.

    Return ``RespondDecision.RESPOND``, ``IGNORE``, ``ASK_MODEL`` (the small model
    decides with the should-respond template) or ``None`` to defer. The kernel's
    default (trylast) answers in direct, API and self rooms, ignores muted rooms,
    and in group rooms answers only when the agent's name is mentioned. Stops at
    the first non-``None`` result. Must be a plain ``def``.

    :param runtime: The agent's runtime.
    :param message: The stored incoming message.
    :param room: Its room.
    :param participant: The agent's own participant record in the room (its
        follow/mute state), or ``None``.
    :return: A decision, or ``None``.
    """


@hookspec(firstresult=True)
def carrier_choose_executor(runtime: AgentRuntime, available: Sequence[str]) -> str | None:
    """Pick the executor that runs this runtime's messages.

    ``CARRIER_EXECUTOR`` wins over this hook; the default is ``"inprocess"``.
    Stops at the first non-``None`` result. Must be a plain ``def``.

    :param runtime: The agent's runtime.
    :param available: Names of the registered executors.
    :return: An executor name, or ``None``.
    """


@hookspec(firstresult=True)
def carrier_choose_next_run(task: Task, after: float) -> float | None:
    """When a task with a ``cron`` expression runs next, after ``after`` (epoch
    seconds): the plugin that parses cron answers (the kernel parses none); ``None``
    defers to the next plugin. Stops at the first non-``None`` result. Must be a plain
    ``def``.

    :param task: The task; its ``cron`` holds the expression.
    :param after: The time after which the next run falls.
    :return: Epoch seconds of the next run, or ``None``.
    """


# ---- Observers -----------------------------------------------------------------------


@hookspec
def carrier_trace_context(
    runtime: AgentRuntime, message: IncomingMessage, executor: str
) -> dict[str, str] | None:
    """Context to carry with a message that leaves this process.

    Called by an executor that hands the message to another process (the ``workers``
    executor, before enqueueing), through :func:`carrier.emitting.trace_context`. The
    dicts of all implementations are merged into ``message.trace_context``, which
    travels with the message and reaches the observers there in the ``run_started``
    event's ``trace_context``: a tracing plugin returns its propagation headers (W3C
    ``traceparent``), so one message is one trace across processes. Must be a plain
    ``def``; one that raises is logged and skipped.

    :param runtime: The agent's runtime in the process that accepted the message.
    :param message: The message about to leave (its ``message_id`` is set).
    :param executor: The executor's name (``"workers"``).
    :return: Headers to carry, or ``None``.
    """


@hookspec
def carrier_on_event(event: Event) -> Awaitable[None] | None:
    """Observe a loop event (one per stage, with its duration).

    May be ``async def``; the kernel awaits all observers concurrently, for at most
    ``CARRIER_OBSERVER_TIMEOUT_S`` (then cancels the late ones), and ignores their
    results. An observer that raises is logged and never stops the loop.

    :param event: The event.
    :return: Ignored.
    """
