"""Carrier plugin: the core actions, providers, evaluators, should-respond policy and
knowledge. Entry point ``bootstrap``.

Only hook implementations live here: the settings class is declared as an import
string and the actions, providers and evaluators are imported when first
registered, so ``carrier --help`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import Action, Command, Evaluator, Provider, TaskWorker
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, Participant, RespondDecision, Room, Task

__all__: list[str] = []


@carrier.hookimpl
def carrier_add_settings(settings: SettingsRegistry) -> None:
    """Declare the ``bootstrap`` namespace (``CARRIER_BOOTSTRAP_*``)."""
    settings.add("bootstrap", "carrier_plugin_bootstrap.settings:BootstrapSettings")


@carrier.hookimpl
def carrier_register_actions(actions: Registry[Action]) -> None:
    """REPLY, IGNORE, NONE, CONTINUE, FOLLOW/UNFOLLOW/MUTE/UNMUTE_ROOM, SEND_MESSAGE,
    UPDATE_GOAL, SCHEDULE_TASK."""
    from carrier_plugin_bootstrap.actions import ACTIONS
    from carrier_plugin_bootstrap.scheduling import ScheduleTaskAction

    every: dict[str, type[Action]] = {**ACTIONS, ScheduleTaskAction.name: ScheduleTaskAction}
    for name, action in every.items():
        actions.add(name, action, description=action.description)


@carrier.hookimpl
def carrier_register_task_workers(task_workers: Registry[TaskWorker]) -> None:
    """``follow_up`` (say a text in the task's room) and ``goal`` (work a goal)."""
    from carrier_plugin_bootstrap.scheduling import FollowUpWorker, GoalWorker

    task_workers.add("follow_up", FollowUpWorker, description="Say a text in the task's room.")
    task_workers.add("goal", GoalWorker, description="Work toward a goal autonomously.")


@carrier.hookimpl
def carrier_choose_next_run(task: Task, after: float) -> float | None:
    """Cron expressions (croniter: five fields, ``@hourly``, ``@daily``, ...; UTC)."""
    if not task.cron:
        return None
    from carrier_plugin_bootstrap.scheduling import next_cron_run

    return next_cron_run(task.cron, after)


@carrier.hookimpl
def carrier_register_providers(providers: Registry[Provider]) -> None:
    """Character sample, time, entities, sender facts, reflection, goals, attachments,
    the action catalogue, and knowledge (dynamic; ingests at start-up)."""
    from carrier_plugin_bootstrap.providers import PROVIDERS

    for name, provider in PROVIDERS.items():
        providers.add(name, provider, description=provider.description)


@carrier.hookimpl
def carrier_register_evaluators(evaluators: Registry[Evaluator]) -> None:
    """Fact extraction, goal progress and reflection."""
    from carrier_plugin_bootstrap.evaluators import EVALUATORS

    for name, evaluator in EVALUATORS.items():
        evaluators.add(name, evaluator, description=evaluator.description)


@carrier.hookimpl
def carrier_register_commands(commands: Registry[Command]) -> None:
    """``carrier knowledge add PATH``."""
    commands.add(
        "knowledge",
        build_knowledge_command,
        description="Add knowledge documents (.md/.txt files or folders) to an agent.",
    )


def build_knowledge_command() -> Command:
    """The ``knowledge`` command, imported only when it runs (``--help`` stays cheap)."""
    from carrier_plugin_bootstrap.commands import KnowledgeCommand

    return KnowledgeCommand()


@carrier.hookimpl
def carrier_choose_should_respond(
    runtime: AgentRuntime, message: Memory, room: Room, participant: Participant | None
) -> RespondDecision | None:
    """Always in direct rooms; in groups when addressed, else the small model decides;
    never in muted rooms (see :mod:`carrier_plugin_bootstrap.respond`)."""
    from carrier_plugin_bootstrap.config import settings_for
    from carrier_plugin_bootstrap.respond import decide

    return decide(
        runtime, message, room, participant, group_policy=settings_for(runtime).group_policy
    )
