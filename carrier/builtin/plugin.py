"""The kernel's builtin plugin: ``memory://`` store, ``echo`` model, ``inprocess``
executor and the default should-respond policy. Every hook is ``trylast``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from carrier.protocols import Command, Executor, MemoryStore, Model
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, Participant, RespondDecision, Room

hookimpl = pluggy.HookimplMarker("carrier")

_ALWAYS_RESPOND = {"direct", "api", "self", "voice"}


@hookimpl(trylast=True)
def carrier_register_models(models: Registry[Model]) -> None:
    from carrier.builtin.echo_model import EchoModel

    models.add("echo", EchoModel, description="Deterministic echo model (builtin, no network).")


@hookimpl(trylast=True)
def carrier_register_stores(stores: Registry[MemoryStore]) -> None:
    from carrier.builtin.memory_store import InMemoryStore

    stores.add("memory", InMemoryStore, description="In-memory store (builtin, not durable).")


@hookimpl(trylast=True)
def carrier_register_executors(executors: Registry[Executor]) -> None:
    from carrier.executor import InProcessExecutor

    executors.add("inprocess", InProcessExecutor, description="Run messages in this process.")


@hookimpl(trylast=True)
def carrier_choose_should_respond(
    runtime: AgentRuntime, message: Memory, room: Room, participant: Participant | None
) -> RespondDecision:
    from carrier.types import ParticipantState, RespondDecision

    if participant is not None and participant.state is ParticipantState.MUTED:
        return RespondDecision.IGNORE
    if room.type in _ALWAYS_RESPOND:
        return RespondDecision.RESPOND
    names = [runtime.character.name, runtime.character.username or ""]
    pattern = "|".join(re.escape(n) for n in names if n)
    if pattern and re.search(rf"\b(?:{pattern})\b", message.content.text, re.IGNORECASE):
        return RespondDecision.RESPOND
    return RespondDecision.IGNORE


@hookimpl(trylast=True)
def carrier_register_commands(commands: Registry[Command]) -> None:
    commands.add(
        "approvals",
        _approvals_command,
        description="List, approve or reject actions waiting for a person's approval.",
    )
    commands.add(
        "tasks",
        _tasks_command,
        description="List scheduled tasks, run the scheduler, or cancel a task.",
    )


def _approvals_command() -> Command:
    """Imported only when it runs: ``carrier --help`` loads no pydantic."""
    from carrier.leash_commands import ApprovalsCommand

    return ApprovalsCommand()


def _tasks_command() -> Command:
    from carrier.leash_commands import TasksCommand

    return TasksCommand()
