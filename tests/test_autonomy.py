"""Autonomous mode: plan, act and check progress without user messages."""

from __future__ import annotations

import json

from carrier.builtin.memory_store import InMemoryStore
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import EventType, Goal, GoalStatus, Objective
from tests.plugins_for_tests import TestPlugin


async def test_goal_with_three_objectives_is_completed(host, character, events) -> None:
    host.register(TestPlugin(), name="test-plugin")
    model = FakeModel()
    model.queue(json.dumps({"objectives": ["gather notes", "write draft", "proofread"]}))
    for index in range(3):
        model.queue(f"working on {index}", actions=[("COMPLETE_OBJECTIVE", {"index": index})])
    runtime = AgentRuntime(
        character, host=host, store=InMemoryStore(), models={"large": model, "embedding": None}
    )
    steps: list[tuple[int, int]] = []

    async def on_step(step, reply, goal) -> None:
        steps.append((step, sum(o.completed for o in goal.objectives)))

    async with runtime:
        run = await runtime.run_autonomous("write an essay", max_steps=10, on_step=on_step)
    assert run.completed
    assert [o.description for o in run.goal.objectives] == [
        "gather notes",
        "write draft",
        "proofread",
    ]
    assert steps == [(1, 1), (2, 2), (3, 3)]
    # each step told the model which objective is next, and offered the actions
    assert "Next objective: write draft" in model.requests[2].messages[-1].content
    assert any(a.name == "COMPLETE_OBJECTIVE" for a in model.requests[1].actions)
    assert len(events.of(EventType.GOAL_STEP)) == 3
    # autonomous prompts are internal: nothing is left "unanswered"
    assert await runtime.store.unanswered_messages(agent_id=runtime.agent_id) == []


async def test_budget_is_respected_when_the_goal_is_not_met(
    runtime: AgentRuntime, fake_model: FakeModel
) -> None:
    goal = Goal(
        agent_id=runtime.agent_id,
        name="impossible",
        objectives=[Objective(description="a"), Objective(description="b")],
    )
    run = await runtime.run_autonomous(goal, max_steps=3)
    assert not run.completed
    assert run.goal.status is GoalStatus.IN_PROGRESS
    assert len(run.steps) == 3
    assert len(fake_model.requests) == 3  # no planning call: objectives were given


async def test_unusable_plan_falls_back_to_the_goal_itself(
    runtime: AgentRuntime, fake_model: FakeModel
) -> None:
    fake_model.queue("I refuse to answer in JSON")
    run = await runtime.run_autonomous("tidy up", max_steps=1)
    assert [o.description for o in run.goal.objectives] == ["tidy up"]
