"""The core evaluators: fact extraction, goal progress and reflection.

Each asks the small model for a JSON object through ``response_schema`` (the
kernel parses it, and retries or falls back when the answer holds none). A model
failure makes the evaluator's result unsuccessful; it never stops the loop.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from carrier.errors import ConfigurationError, ModelError
from carrier.protocols import Evaluator
from carrier.types import (
    ChatMessage,
    Content,
    EvaluatorResult,
    EventType,
    Goal,
    GoalStatus,
    Memory,
    MemoryScope,
    MemoryType,
    ModelClass,
    ModelRequest,
    SearchScope,
    new_id,
)
from carrier_plugin_bootstrap.config import NAMESPACE, settings_for
from carrier_plugin_bootstrap.grounding import grounded, verbatim_facts

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import State

__all__ = ["EVALUATORS", "FactEvaluator", "GoalEvaluator", "ReflectionEvaluator"]

logger = logging.getLogger("carrier_plugin_bootstrap.evaluators")

_FIRST_PERSON = re.compile(r"\b(i|i'm|im|i've|i'd|my|mine|me|we|our|us)\b", re.IGNORECASE)


def _name(state: State, fallback: str = "the user") -> str:
    sender = state.sender
    return sender.names[0] if sender is not None and sender.names else fallback


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema, built once (building it takes about half a millisecond)."""
    return model.model_json_schema()


async def _ask(
    runtime: AgentRuntime, system: str, user: str, schema: type[BaseModel]
) -> BaseModel | None:
    """The small model's answer validated against ``schema``; ``None`` if unusable."""
    request = ModelRequest(
        model_class=ModelClass.SMALL,
        system=system,
        messages=[ChatMessage(role="user", content=user)],
        response_schema=_schema(schema),
        max_tokens=settings_for(runtime).evaluator_max_tokens,
        temperature=0.0,
    )
    response = await runtime.generate(request)
    try:
        return schema.model_validate(response.structured)
    except ValidationError as exc:
        logger.info("Unusable %s answer: %s", schema.__name__, exc)
        return None


# ---- facts ------------------------------------------------------------------------------


class _Facts(BaseModel):
    facts: list[str] = Field(default_factory=list, max_length=10)


FACTS_PROMPT = """\
You extract facts for {agent}'s long-term memory. From the message {name} just wrote, \
list the new, lasting facts about {name} (or about people and things they mention): \
who they are, where they live, what they do, like, own or plan. Write each fact as one \
short sentence that names {name}, e.g. "{name} lives in Oslo.". Skip questions, \
greetings, opinions about the conversation and anything already known.
Already known:
{known}
Answer only JSON: {{"facts": ["...", "..."]}} ({{"facts": []}} when there is none)."""


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


class FactEvaluator(Evaluator):
    """Stores facts about users as ``FACT`` memories: grounded in the sender's own
    words, scoped to where they were said, deduplicated by meaning within that scope.

    A fact learned in a direct room is ``DIRECT`` (it follows its subject to their
    other direct rooms); one learned in a group is ``ROOM`` (it stays in the group).
    Claims the message does not support (:func:`~carrier_plugin_bootstrap.grounding.grounded`)
    are dropped and reported in a ``memory_rejected`` event. With
    ``CARRIER_BOOTSTRAP_FACTS_MODE=verbatim`` (``auto`` picks it for the embedded local
    model, too small to paraphrase faithfully) no model is asked: the message's own
    first-person statements are kept as written.
    """

    name = "facts"
    description = "Extracts lasting facts from what users say about themselves."
    timeout_s = 60.0

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        text = message.content.text
        return (
            message.entity_id != runtime.agent_id
            and not message.metadata.get("internal")
            and len(text.split()) >= 3
            and _FIRST_PERSON.search(text) is not None
        )

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        if _verbatim(runtime):
            claims = verbatim_facts(message.content.text)
        else:
            name = _name(state)
            known = [s.memory.content.text for s in state.facts][:10]
            system = FACTS_PROMPT.format(
                agent=runtime.character.name, name=name, known="\n".join(known) or "(nothing)"
            )
            try:
                answer = await _ask(runtime, system, message.content.text, _Facts)
            except (ModelError, ConfigurationError) as exc:
                return EvaluatorResult(name=self.name, success=False, error=str(exc))
            claims = [] if not isinstance(answer, _Facts) else answer.facts
        kept, rejected = self.ground(runtime, message, state, claims)
        if rejected:
            await runtime.emit(
                EventType.MEMORY_REJECTED,
                message,
                evaluator=self.name,
                reason="not supported by the sender's words",
                count=len(rejected),
                texts=rejected,
            )
        added, duplicates = await self.store_facts(runtime, message, kept, state=state)
        return EvaluatorResult(
            name=self.name,
            data={"added": added, "duplicates": duplicates, "rejected": rejected},
        )

    @staticmethod
    def ground(
        runtime: AgentRuntime, message: Memory, state: State, claims: list[str]
    ) -> tuple[list[str], list[str]]:
        """Split ``claims`` into those the message supports and those it does not."""
        share = settings_for(runtime).fact_grounding
        names = [runtime.character.name, *(state.sender.names if state.sender else [])]
        kept: list[str] = []
        rejected: list[str] = []
        for claim in claims:
            claim = claim.strip()
            if not claim:
                continue
            supported = grounded(claim, message.content.text, names=names, share=share)
            (kept if supported else rejected).append(claim)
        return kept, rejected

    async def store_facts(
        self,
        runtime: AgentRuntime,
        message: Memory,
        claims: list[str],
        *,
        state: State | None = None,
    ) -> tuple[list[str], list[str]]:
        """Store each new claim about the sender in the message's scope; return
        (added, duplicates). Duplicates are judged within that scope only."""
        claims = [c.strip() for c in claims if c and len(_normalized(c).split()) >= 2]
        if not claims:
            return [], []
        store = runtime.store
        room = state.room if state is not None else await store.get_room(message.room_id)
        direct = room is not None and room.direct
        scope = SearchScope(room_id=message.room_id, entity_id=message.entity_id, direct=direct)
        where = "direct" if direct else message.room_id
        threshold = settings_for(runtime).fact_similarity
        vectors = await runtime.embed(claims)
        added: list[str] = []
        duplicates: list[str] = []
        for index, claim in enumerate(claims):
            fact_id = new_id(
                f"fact:{runtime.agent_id}:{message.entity_id}:{where}:{_normalized(claim)}"
            )
            embedding = vectors[index] if vectors else None
            duplicate = await store.get_memory(fact_id) is not None
            if not duplicate and embedding is not None:
                similar = await store.search_memories(
                    agent_id=runtime.agent_id,
                    embedding=embedding,
                    type=MemoryType.FACT,
                    entity_id=message.entity_id,
                    limit=1,
                    threshold=threshold,
                    scope=scope,
                )
                duplicate = bool(similar)
            if duplicate:
                duplicates.append(claim)
                continue
            await store.create_memory(
                Memory(
                    id=fact_id,
                    agent_id=runtime.agent_id,
                    entity_id=message.entity_id,
                    room_id=message.room_id,
                    type=MemoryType.FACT,
                    scope=MemoryScope.DIRECT if direct else MemoryScope.ROOM,
                    content=Content(text=claim, source="facts"),
                    embedding=embedding,
                    metadata={"source_message": message.id},
                )
            )
            added.append(claim)
        return added, duplicates


def _verbatim(runtime: AgentRuntime) -> bool:
    mode = settings_for(runtime).facts_mode
    if mode != "auto":
        return mode == "verbatim"
    try:
        small = runtime.model(ModelClass.SMALL).primary
    except ConfigurationError:
        return True
    return small.name.startswith("local")


# ---- goals ------------------------------------------------------------------------------


class _Done(BaseModel):
    goal: str
    objective: int


class _Progress(BaseModel):
    completed: list[_Done] = Field(default_factory=list, max_length=20)


GOALS_PROMPT = """\
You track {agent}'s goals. Goals and their objectives:
{goals}
Read the exchange below. Which objectives that are still open does it show as \
achieved? Only count what clearly happened. Answer only JSON: \
{{"completed": [{{"goal": "<goal id>", "objective": <number>}}]}} \
({{"completed": []}} when none)."""


def _goal_lines(goals: list[Goal]) -> str:
    lines = []
    for goal in goals:
        lines.append(f"Goal {goal.id}: {goal.name}")
        lines.extend(
            f"  {i}. [{'x' if o.completed else ' '}] {o.description}"
            for i, o in enumerate(goal.objectives, 1)
        )
    return "\n".join(lines)


class GoalEvaluator(Evaluator):
    """Marks objectives the exchange achieved and closes goals that are finished."""

    name = "goals"
    description = "Tracks progress on the open goals."
    always_run = True
    needs_capable_model = True  # off with the default 135M model: it cannot judge it
    timeout_s = 60.0

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        return bool(state.goals)

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        store = runtime.store
        before = {g.id: g for g in state.goals}
        fresh = [g for g in [await store.get_goal(i) for i in before] if g is not None]
        closed = [g.id for g in fresh if await self._close_if_finished(runtime, g)]
        open_goals = [g for g in fresh if not g.finished]
        # an action already recorded progress during this message: trust it
        progressed = any(_done_count(g) > _done_count(before[g.id]) for g in fresh)
        marked: list[dict[str, Any]] = []
        if open_goals and not progressed:
            exchange = [f"{_name(state, 'User')}: {message.content.text}"]
            exchange += [f"{runtime.character.name}: {r.content.text}" for r in responses]
            exchange += [
                f"(action {r.name}: {'ok' if r.success else 'failed'} {r.text or r.error or ''})"
                for r in state.action_results
            ]
            system = GOALS_PROMPT.format(
                agent=runtime.character.name, goals=_goal_lines(open_goals)
            )
            try:
                answer = await _ask(runtime, system, "\n".join(exchange), _Progress)
            except (ModelError, ConfigurationError) as exc:
                return EvaluatorResult(
                    name=self.name, success=False, error=str(exc), data={"closed": closed}
                )
            if isinstance(answer, _Progress):
                marked, newly_closed = await self._apply(runtime, open_goals, answer)
                closed += newly_closed
        return EvaluatorResult(name=self.name, data={"marked": marked, "closed": closed})

    @staticmethod
    async def _close_if_finished(runtime: AgentRuntime, goal: Goal) -> bool:
        if goal.status is GoalStatus.IN_PROGRESS and goal.finished:
            await runtime.store.upsert_goal(goal.model_copy(update={"status": GoalStatus.DONE}))
            return True
        return False

    async def _apply(
        self, runtime: AgentRuntime, goals: list[Goal], answer: _Progress
    ) -> tuple[list[dict[str, Any]], list[str]]:
        by_id = {g.id: g.model_copy(deep=True) for g in goals}
        marked: list[dict[str, Any]] = []
        for done in answer.completed:
            goal = by_id.get(done.goal) or next(
                (g for g in by_id.values() if g.name.lower() == done.goal.lower()), None
            )
            if goal is None or not 1 <= done.objective <= len(goal.objectives):
                continue
            objective = goal.objectives[done.objective - 1]
            if not objective.completed:
                objective.completed = True
                marked.append({"goal": goal.id, "objective": done.objective})
        closed = []
        for goal in by_id.values():
            if marked and any(m["goal"] == goal.id for m in marked):
                await runtime.store.upsert_goal(goal)
                if await self._close_if_finished(runtime, goal):
                    closed.append(goal.id)
        return marked, closed


def _done_count(goal: Goal) -> int:
    return sum(o.completed for o in goal.objectives) + (goal.status is not GoalStatus.IN_PROGRESS)


# ---- reflection -------------------------------------------------------------------------


class _Reflection(BaseModel):
    summary: str = Field(min_length=1, max_length=2000)


REFLECTION_PROMPT = """\
You are {agent}. Summarize the conversation below for your own memory in two or three \
sentences: who took part, what was discussed or decided, and what is still open. \
Answer only JSON: {{"summary": "..."}}."""


class ReflectionEvaluator(Evaluator):
    """Writes a short summary of a room every ``reflection_interval`` messages."""

    name = "reflection"
    description = "Summarizes each room's conversation every few messages."
    always_run = True
    needs_capable_model = True  # off with the default 135M model: it cannot summarize
    timeout_s = 60.0

    def __init__(self) -> None:
        # Per room: (messages counted, count at the last reflection). Seeded from the store
        # once per room, then kept here, so a turn costs no count over the room's history.
        self._rooms: dict[str, tuple[int, int]] = {}

    @staticmethod
    def _key(room_id: str) -> str:
        """The room's key in the plugin's state: the count at its last reflection."""
        return f"reflection:{room_id}"

    @staticmethod
    async def _last(runtime: AgentRuntime, room_id: str) -> int:
        found = await runtime.plugin_state(NAMESPACE).get(ReflectionEvaluator._key(room_id))
        if found is None:  # written by carrier-plugin-bootstrap before plugin_state
            found = await runtime.store.get_cache(
                f"bootstrap:reflection:{runtime.agent_id}:{room_id}"
            )
        return int(found or 0)

    async def _counts(self, runtime: AgentRuntime, room_id: str) -> tuple[int, int]:
        known = self._rooms.get(room_id)
        if known is None:
            count = await runtime.store.count_memories(
                agent_id=runtime.agent_id, room_id=room_id, type=MemoryType.MESSAGE
            )
            last = await self._last(runtime, room_id)
            if len(self._rooms) > 10_000:
                self._rooms.clear()
        else:
            count, last = known[0] + 2, known[1]  # the last answer and this message
        self._rooms[room_id] = (count, last)
        return count, last

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        interval = settings_for(runtime).reflection_interval
        if not interval:
            return False
        count, last = await self._counts(runtime, message.room_id)
        return count - last >= interval

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        store = runtime.store
        interval = settings_for(runtime).reflection_interval
        count, _ = self._rooms.get(message.room_id) or await self._counts(runtime, message.room_id)
        # Mark the attempt first: a model that cannot summarize is asked again only
        # after another interval, not on every following message.
        self._rooms[message.room_id] = (count, count)
        await runtime.plugin_state(NAMESPACE).set(self._key(message.room_id), count)
        recent = await store.get_memories(
            agent_id=runtime.agent_id,
            room_id=message.room_id,
            type=MemoryType.MESSAGE,
            limit=min(max(interval * 2, 10), 40),
        )
        names = {a.id: (a.names[0] if a.names else a.id) for a in state.actors}
        names[runtime.agent_id] = runtime.character.name
        lines = [
            f"{names.get(m.entity_id, m.entity_id)}: {m.content.text}"
            for m in [*recent, *responses]
            if m.content.text
        ]
        system = REFLECTION_PROMPT.format(agent=runtime.character.name)
        try:
            answer = await _ask(runtime, system, "\n".join(lines), _Reflection)
        except (ModelError, ConfigurationError) as exc:
            return EvaluatorResult(name=self.name, success=False, error=str(exc))
        if not isinstance(answer, _Reflection):
            return EvaluatorResult(name=self.name, success=False, error="no usable summary")
        summary = answer.summary.strip()
        vectors = await runtime.embed([summary])
        await store.create_memory(
            Memory(
                id=new_id(f"reflection:{runtime.agent_id}:{message.room_id}:{count}"),
                agent_id=runtime.agent_id,
                entity_id=runtime.agent_id,
                room_id=message.room_id,
                type=MemoryType.REFLECTION,
                content=Content(text=summary, source="reflection"),
                embedding=vectors[0] if vectors else None,
                metadata={"messages": count},
            )
        )
        return EvaluatorResult(name=self.name, data={"summary": summary, "messages": count})


#: Every evaluator of the plugin, by name.
EVALUATORS: dict[str, type[Evaluator]] = {
    cls.name: cls for cls in (FactEvaluator, GoalEvaluator, ReflectionEvaluator)
}
