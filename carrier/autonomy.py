"""Autonomous mode: the agent works toward a goal without user messages.

Plan (when the goal has no objectives, the large model splits it into some), then
step: each step is an internal message in the agent's own room that runs through
the normal loop, so actions such as ``UPDATE_GOAL`` and the goal evaluators mark
progress in the store. The run ends when the stored goal is finished or the step
budget is spent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from carrier.errors import ConfigurationError, ModelError
from carrier.types import (
    CarrierModel,
    ChatMessage,
    EventType,
    Goal,
    GoalStatus,
    IncomingMessage,
    ModelClass,
    ModelRequest,
    Objective,
    Reply,
    Role,
    RoomType,
)

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = ["AutonomousRun", "run_autonomous"]

logger = logging.getLogger("carrier.autonomy")

PLAN_PROMPT = (
    "You are {name}. Split this goal into 2 to 5 short, concrete objectives, in order. "
    'Answer only JSON: {{"objectives": ["...", "..."]}}.'
)

STEP_PROMPT = (
    "[autonomous step {step} of {budget}] You are working on your goal {goal!r}.\n"
    "Objectives:\n{objectives}\n"
    "Next objective: {next}. Use one of your actions to make progress on it; when an "
    "objective is achieved, mark it complete with the goal-update action."
)


class _Plan(BaseModel):
    objectives: list[str] = Field(min_length=1, max_length=10)


class AutonomousRun(CarrierModel):
    """The result of :func:`run_autonomous`."""

    goal: Goal
    steps: list[Reply] = Field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.goal.status is GoalStatus.DONE


async def plan_objectives(runtime: AgentRuntime, goal: Goal) -> list[Objective]:
    """Ask the large model for objectives; the goal itself when the answer is unusable."""
    request = ModelRequest(
        model_class=ModelClass.LARGE,
        system=PLAN_PROMPT.format(name=runtime.character.name),
        messages=[ChatMessage(role="user", content=goal.name)],
        response_schema=_Plan.model_json_schema(),
        max_tokens=256,
    )
    try:
        response = await runtime.generate(request)
        plan = _Plan.model_validate(response.structured)  # the kernel parsed it
    except (ModelError, ConfigurationError, ValidationError, ValueError) as exc:
        logger.warning(
            "Could not plan goal %r (%s); using it as its only objective.", goal.name, exc
        )
        return [Objective(description=goal.name)]
    return [Objective(description=text) for text in plan.objectives if text.strip()]


async def run_autonomous(
    runtime: AgentRuntime,
    goal: str | Goal,
    *,
    max_steps: int = 10,
    on_step: Callable[[int, Reply, Goal], Awaitable[None]] | None = None,
    role: Role | None = None,
) -> AutonomousRun:
    """Plan, act and check progress until the goal is finished or ``max_steps`` are spent.

    Steps act with the role the goal was given by: ``role`` (recorded in the goal's
    metadata), else the one recorded, else MEMBER. Only an owner's command (``carrier
    run`` at the operator's terminal) passes ``Role.OWNER``.

    Raises:
        ConfigurationError: At once, when the large model cannot choose actions (the
            default local model): the message names what to configure.
    """
    large = runtime.model(ModelClass.LARGE).primary
    if not large.calls_actions:
        raise ConfigurationError(
            f"Working toward a goal needs a model that chooses actions; {large.name} does "
            "not. Configure one: CARRIER_MODEL_LARGE=openai:gpt-4.1-mini with "
            "CARRIER_OPENAI_API_KEY, CARRIER_MODEL_LARGE=anthropic with "
            "CARRIER_ANTHROPIC_API_KEY, an OpenAI-compatible server with "
            "CARRIER_OPENAI_BASE_URL and CARRIER_OPENAI_MODEL, or a capable GGUF file with "
            "CARRIER_LOCAL_MODEL_PATH and CARRIER_LOCAL_ACTIONS=true."
        )
    room_id = runtime.system_room("autonomous")
    if isinstance(goal, str):
        goal = Goal(agent_id=runtime.agent_id, room_id=room_id, name=goal)
    if role is not None:
        goal = goal.model_copy(update={"metadata": {**goal.metadata, "role": role.value}})
    try:
        step_role = Role(goal.metadata.get("role", Role.MEMBER))
    except ValueError:
        step_role = Role.MEMBER
    if not goal.objectives:
        goal = goal.model_copy(update={"objectives": await plan_objectives(runtime, goal)})
    await runtime.store.upsert_goal(goal)
    run = AutonomousRun(goal=goal)
    for step in range(1, max_steps + 1):
        current = await runtime.store.get_goal(goal.id) or goal
        if current.finished:
            break
        pending = [o.description for o in current.objectives if not o.completed]
        text = STEP_PROMPT.format(
            step=step,
            budget=max_steps,
            goal=current.name,
            objectives="\n".join(
                f"- [{'x' if o.completed else ' '}] {o.description}" for o in current.objectives
            ),
            next=pending[0] if pending else current.name,
        )
        reply = await runtime.handle(
            IncomingMessage(
                text=text,
                user_id=runtime.agent_id,
                user_name=runtime.character.name,
                room_id=current.room_id or room_id,
                room_type=RoomType.SELF,
                source="autonomy",
                role=step_role,
                metadata={"internal": True, "goal_id": current.id, "step": step},
            )
        )
        await reply.evaluated()  # the goal evaluator's progress decides the next step
        run.steps.append(reply)
        latest = await runtime.store.get_goal(goal.id) or current
        await runtime.emit(
            EventType.GOAL_STEP,
            reply.message,
            goal_id=goal.id,
            step=step,
            done=sum(o.completed for o in latest.objectives),
            total=len(latest.objectives),
        )
        if on_step is not None:
            await on_step(step, reply, latest)
    final = await runtime.store.get_goal(goal.id) or goal
    if final.status is GoalStatus.IN_PROGRESS and final.finished:
        final = final.model_copy(update={"status": GoalStatus.DONE})
        await runtime.store.upsert_goal(final)
    run.goal = final
    return run
