"""Small in-process plugins the kernel tests register on a fresh host."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel

import carrier
from carrier.protocols import Action, Evaluator, Provider
from carrier.runtime import AgentRuntime
from carrier.types import (
    ActionResult,
    Content,
    EvaluatorResult,
    GoalStatus,
    Memory,
    ProviderOutput,
    Role,
    State,
)


class WeatherArgs(BaseModel):
    city: str
    days: int = 1


class WeatherAction(Action):
    name = "GET_WEATHER"
    description = "Look up the weather for a city."
    similes = ("WEATHER", "FORECAST")
    parameters = WeatherArgs

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, WeatherArgs)
        return ActionResult(
            name=self.name,
            text=f"sunny in {arguments.city}",
            data={"city": arguments.city, "days": arguments.days},
        )


class ShoutAction(Action):
    name = "SHOUT"
    description = "Send an extra message in capitals."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, messages=[Content(text=message.content.text.upper())])


class ContinueAction(Action):
    name = "CONTINUE"
    description = "Think one more step."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, continue_chain=True)


class IgnoreAction(Action):
    name = "IGNORE"
    description = "Say nothing."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, suppress_reply=True)


class BrokenAction(Action):
    name = "BROKEN"
    description = "Always fails."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        raise RuntimeError("disk on fire")


class AdminAction(Action):
    name = "SHUTDOWN"
    description = "Only for admins."
    required_role = Role.ADMIN

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, text="shutting down")


class CompleteObjectiveArgs(BaseModel):
    index: int


class CompleteObjective(Action):
    name = "COMPLETE_OBJECTIVE"
    description = "Mark an objective of the current goal complete."
    parameters = CompleteObjectiveArgs

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, CompleteObjectiveArgs)
        goal = await runtime.store.get_goal(message.metadata["goal_id"])
        assert goal is not None
        goal.objectives[arguments.index].completed = True
        if all(o.completed for o in goal.objectives):
            goal.status = GoalStatus.DONE
        await runtime.store.upsert_goal(goal)
        return ActionResult(name=self.name, text=f"objective {arguments.index} done")


class ClockProvider(Provider):
    name = "clock"
    position = 1

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        return ProviderOutput(text="The time is noon.", values={"time": "12:00"})


class SlowProvider(Provider):
    name = "slow"
    timeout_s = 0.05

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        await asyncio.sleep(10)
        return ProviderOutput(text="never")


class CountingEvaluator(Evaluator):
    name = "counter"
    seen: ClassVar[list[str]] = []

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        self.seen.append(message.content.text)
        return EvaluatorResult(name=self.name, data={"responses": len(responses)})


class FailingEvaluator(Evaluator):
    name = "failing"
    always_run = True

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        raise ValueError("evaluator bug")


class TestPlugin:
    """A plugin object with everything above."""

    __test__ = False

    def __init__(self, *, slow: bool = False) -> None:
        self.slow = slow

    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        for action in (
            WeatherAction,
            ShoutAction,
            ContinueAction,
            IgnoreAction,
            BrokenAction,
            AdminAction,
            CompleteObjective,
        ):
            actions.add(action.name, action)

    @carrier.hookimpl
    def carrier_register_providers(self, providers: Any) -> None:
        providers.add("clock", ClockProvider)
        if self.slow:
            providers.add("slow", SlowProvider)

    @carrier.hookimpl
    def carrier_register_evaluators(self, evaluators: Any) -> None:
        evaluators.add("counter", CountingEvaluator)
        evaluators.add("failing", FailingEvaluator)
