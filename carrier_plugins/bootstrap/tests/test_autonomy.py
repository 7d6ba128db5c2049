"""Autonomous mode: a goal with three objectives worked through to done, with the
goals provider, UPDATE_GOAL and the goal evaluator."""

from __future__ import annotations

import json
from typing import Any

from carrier.character import Character
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.types import Goal, GoalStatus, Objective, Reply


async def test_a_three_objective_goal_is_completed_with_update_goal(
    bootstrap_host: PluginHost, character: Character, sql_store: Any
) -> None:
    large, small = FakeModel(), FakeModel(default_text="{}")
    large.queue(json.dumps({"objectives": ["outline", "draft", "proofread"]}))
    for number, text in enumerate(["Outlined.", "Drafted.", "Proofread."], 1):
        large.queue(text, actions=[("UPDATE_GOAL", {"objective": number})])
    printed: list[str] = []

    async def on_step(step: int, reply: Reply, goal: Goal) -> None:
        done = sum(o.completed for o in goal.objectives)
        actions = ", ".join(r.name for r in reply.action_results)
        printed.append(f"step {step}: {actions}; {done}/{len(goal.objectives)} objectives done")

    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        run = await agent.run_autonomous("write a blog post", max_steps=6, on_step=on_step)
    assert run.completed
    assert [o.completed for o in run.goal.objectives] == [True, True, True]
    assert printed == [
        "step 1: UPDATE_GOAL; 1/3 objectives done",
        "step 2: UPDATE_GOAL; 2/3 objectives done",
        "step 3: UPDATE_GOAL; 3/3 objectives done",
    ]
    step_two = large.requests[2]
    assert "UPDATE_GOAL" in {a.name for a in step_two.actions}
    assert "1/3 done, next is objective 2." in prompt_text(step_two)
    assert small.requests == []  # the actions recorded progress; no evaluator call needed


async def test_the_goal_evaluator_records_progress_the_model_did_not(
    bootstrap_host: PluginHost, character: Character, sql_store: Any
) -> None:
    large, small = FakeModel(), FakeModel(default_text="{}")
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        goal = Goal(
            agent_id=agent.agent_id,
            room_id=f"autonomous-{agent.agent_id}",
            name="tidy up",
            objectives=[Objective(description=d) for d in ("dishes", "laundry", "floor")],
        )
        for number in (1, 2, 3):
            large.queue(f"Finished step {number}.")
            small.queue(json.dumps({"completed": [{"goal": goal.id, "objective": number}]}))
        run = await agent.run_autonomous(goal, max_steps=5)
    assert run.completed
    assert len(run.steps) == 3
    assert run.goal.status is GoalStatus.DONE


async def test_out_of_budget_leaves_the_goal_in_progress(
    bootstrap_host: PluginHost, character: Character, sql_store: Any
) -> None:
    large = FakeModel()
    large.queue(json.dumps({"objectives": ["a", "b", "c"]}))
    large.queue("Did a.", actions=[("UPDATE_GOAL", {"objective": "a"})])
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": FakeModel(default_text="{}"), "embedding": None},
    ) as agent:
        run = await agent.run_autonomous("do three things", max_steps=2)
    assert not run.completed
    assert run.goal.status is GoalStatus.IN_PROGRESS
    assert [o.completed for o in run.goal.objectives] == [True, False, False]
