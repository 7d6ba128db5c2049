"""The core providers: prompt sections the kernel's ``compose_context`` does not
already render.

The kernel renders the persona (system, bio, lore, adjectives, topics, style and
the first two example conversations), the semantically retrieved facts and
knowledge, the open goals, the action results and the room's history. These
providers add the rest: a rotating sample of the character's other examples and
lore, the time, who is in the room, the facts known about the sender, the room's
latest reflection, how to update goals, the current message's attachments and the
catalogue of offered actions with examples. Knowledge ingestion runs from the
``knowledge`` provider's ``setup`` (a dynamic provider: it never runs per message
unless asked for).
"""

from __future__ import annotations

import logging
import random
from abc import abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from carrier.plugin_calls import small_model, token_counter, trim_to_tokens
from carrier.protocols import Provider
from carrier.types import (
    DIRECT_ROOM_TYPES,
    MemoryType,
    ParticipantState,
    ProviderOutput,
    RoomType,
)

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, State

from carrier_plugin_bootstrap.config import settings_for
from carrier_plugin_bootstrap.grounding import states_something

__all__ = [
    "PROVIDERS",
    "ActionsProvider",
    "AttachmentsProvider",
    "CharacterProvider",
    "EntitiesProvider",
    "GoalsProvider",
    "KnowledgeProvider",
    "ReflectionProvider",
    "RelevantMemoriesProvider",
    "Section",
    "SenderFactsProvider",
    "TimeProvider",
]

logger = logging.getLogger("carrier_plugin_bootstrap.providers")

#: How many of each character list the kernel's persona already shows.
_PERSONA_EXAMPLES, _PERSONA_LORE = 2, 5


def fit(runtime: AgentRuntime, text: str, budget: int) -> str:
    """``text`` cut at a line or word so that it, with a closing " …", fits ``budget``
    tokens of the large model (``""`` when nothing fits)."""
    return trim_to_tokens(text, budget, token_counter(runtime))


def _fill(text: str, agent: str) -> str:
    for placeholder in ("{{agent}}", "{{agentName}}", "{{agent_name}}"):
        text = text.replace(placeholder, agent)
    for number in range(1, 5):
        text = text.replace(f"{{{{user{number}}}}}", f"User{number if number > 1 else ''}")
    return text


class Section(Provider):
    """A provider computed by ``section``; the kernel cuts its text to ``max_tokens``."""

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        return await self.section(runtime, message, state)

    @abstractmethod
    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        """Compute the section (each subclass)."""


class CharacterProvider(Section):
    """A rotating sample of the example conversations and lore the persona omits."""

    name = "character"
    description = "Example conversations and background, a different sample per message."
    position = -50
    trusted = True  # the agent's own instructions
    stable = True  # one sample per room: part of the prompt's cached prefix
    timeout_s = 1.0
    max_tokens = 500

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        character = runtime.character
        sample = settings_for(runtime).examples_sample
        rng = random.Random(state.room.id)  # rotates per room, the same for its messages
        extra = character.message_examples[_PERSONA_EXAMPLES:]
        chosen = rng.sample(extra, min(sample, len(extra))) if sample else []
        sections = []
        if chosen:
            conversations = []
            for conversation in chosen:
                lines = [
                    _fill(f"{turn.name}: {turn.content.text}", character.name)
                    for turn in conversation
                    if turn.content.text
                ]
                if lines:
                    conversations.append("\n".join(lines))
            sections.append(
                f"More examples of how {character.name} talks:\n" + "\n\n".join(conversations)
            )
        lore = character.lore[_PERSONA_LORE:]
        if lore:
            picked = rng.sample(lore, min(3, len(lore)))
            sections.append("More background: " + " ".join(picked))
        posts = character.post_examples
        if posts and state.room.type is RoomType.FEED:
            picked = rng.sample(posts, min(3, len(posts)))
            sections.append("Example posts:\n" + "\n".join(f"- {p}" for p in picked))
        return ProviderOutput(text="\n\n".join(sections), values={"examples": len(chosen)}, data={})


class TimeProvider(Section):
    """The current date and time (UTC); nothing for a small model (``Model.small``)."""

    name = "time"
    description = "The current date and time."
    position = -10
    trusted = True  # the agent's own instructions
    timeout_s = 0.5
    max_tokens = 40

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        now = datetime.now(UTC)
        if small_model(runtime):  # a 135M model answers about the date instead of the
            return ProviderOutput()  # question when it sees one: it gets none
        text = f"The current date and time is {now:%A, %d %B %Y, %H:%M} UTC."
        return ProviderOutput(text=text, values={"now": now.isoformat()})


class EntitiesProvider(Section):
    """Who is in the room: names, roles, who sent the message, the agent's own state."""

    name = "entities"
    description = "The people (and agents) in the room."
    position = -20
    timeout_s = 1.5
    max_tokens = 300

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        room = state.room
        if room.type in DIRECT_ROOM_TYPES and len(state.actors) <= 2:
            return ProviderOutput()  # a direct chat: the history says who is talking
        participants = {p.entity_id: p for p in await runtime.store.get_participants(room.id)}
        mine = participants.get(runtime.agent_id)
        room_line = f"Room: {room.name or room.id} ({room.type.value}"
        if mine is not None and mine.state is not ParticipantState.NONE:
            room_line += f"; you have {mine.state.value} it"
        room_line += ")."
        lines = [room_line, "In this conversation:"]
        entities: list[dict[str, Any]] = []
        for actor in state.actors:
            name = actor.names[0] if actor.names else actor.id
            participant = participants.get(actor.id)
            if actor.id == runtime.agent_id:
                lines.append(f"- {runtime.character.name} (you)")
                continue
            notes = [f"id {actor.id}"]
            if participant is not None:
                notes.append(participant.role.value)
            also = [n for n in actor.names[1:] if n != name]
            if also:
                notes.append("also called " + ", ".join(also[:3]))
            line = f"- {name} ({'; '.join(notes)})"
            if actor.id == message.entity_id:
                line += " wrote the current message"
            lines.append(line)
            entities.append({"id": actor.id, "name": name})
        return ProviderOutput(text="\n".join(lines), values={"entities": entities})


class SenderFactsProvider(Section):
    """The newest facts about the sender (without needing an embedding model)."""

    name = "sender_facts"
    description = "What the agent knows about the person it is talking to."
    position = 10
    timeout_s = 1.5
    max_tokens = 250

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        limit = settings_for(runtime).facts_about_sender
        if not limit or message.entity_id == runtime.agent_id:
            return ProviderOutput()
        facts = await runtime.store.get_memories(
            agent_id=runtime.agent_id,
            entity_id=message.entity_id,
            type=MemoryType.FACT,
            limit=limit,
            scope=state.scope or runtime.scope_for(message, state.room),
        )
        shown = {s.memory.id for s in state.facts}  # the kernel already renders those
        # and the history shows (one search over the history's texts, whatever its length)
        said = "\x00".join(m.content.text or "" for m in state.recent_messages) if facts else ""
        fresh = [
            f for f in facts if f.id not in shown and f.content.text and f.content.text not in said
        ]
        if not fresh:
            return ProviderOutput()
        who = state.sender.names[0] if state.sender and state.sender.names else "them"
        text = f"What you know about {who}:\n" + "\n".join(f"- {f.content.text}" for f in fresh)
        return ProviderOutput(text=text, values={"sender_facts": [f.content.text for f in fresh]})


class RelevantMemoriesProvider(Section):
    """The sender's own earlier messages most similar to the new one, from any room
    the scope allows (this room; in a direct room, also their other direct rooms), so
    "what is my name?" finds "My name is Ada" even when no fact was extracted.

    A small model (``Model.small``) gets only earlier messages that state something:
    an earlier question or request ("tell me about 7") tells it nothing it can use,
    and as a section it costs a prompt that changes every turn (60-90 tokens to read,
    which on 2 cores doubles the wait for the first word of the answer).
    """

    name = "relevant_memories"
    description = "What the sender said earlier that relates to the new message."
    position = 15
    timeout_s = 1.5
    max_tokens = 250

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        limit = settings_for(runtime).relevant_memories
        if not limit or message.embedding is None or message.entity_id == runtime.agent_id:
            return ProviderOutput()
        # a few more than wanted: those already in the history are left out (when the
        # history holds the best matches, it already shows what they would add)
        hits = await runtime.store.search_memories(
            agent_id=runtime.agent_id,
            embedding=message.embedding,
            type=MemoryType.MESSAGE,
            entity_id=message.entity_id,
            limit=limit + 4,
            threshold=runtime.settings.search_threshold,
            scope=state.scope or runtime.scope_for(message, state.room),
        )
        fresh = [m for m in (h.memory for h in hits) if m.content.text and m.id != message.id]
        if small_model(runtime):
            fresh = [m for m in fresh if states_something(m.content.text or "")]
        recent = state.recent_messages  # oldest first
        if recent and any(_maybe_shown(m, state.room.id, recent[0]) for m in fresh):
            # only then read the history's ids (32 objects: ~20 µs when caches are cold)
            shown = {m.id for m in recent}
            fresh = [m for m in fresh if m.id not in shown]
        fresh = fresh[:limit]
        if not fresh:
            return ProviderOutput()
        who = state.sender.names[0] if state.sender and state.sender.names else "They"
        text = f"{who} said earlier:\n" + "\n".join(f"- {m.content.text}" for m in fresh)
        return ProviderOutput(text=text, values={"relevant_memories": [m.id for m in fresh]})


def _maybe_shown(memory: Memory, room_id: str, oldest: Memory) -> bool:
    """Whether ``memory`` can be in a history of ``room_id`` whose oldest is ``oldest``
    (a history holds the room's newest messages)."""
    return memory.room_id == room_id and memory.created_at >= oldest.created_at


class ReflectionProvider(Section):
    """The latest reflection (summary) of this room, written by the reflection evaluator."""

    name = "reflection"
    description = "A summary of the room's earlier conversation."
    position = 20
    timeout_s = 1.5
    max_tokens = 250

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        latest = await runtime.store.get_memories(
            agent_id=runtime.agent_id, room_id=state.room.id, type=MemoryType.REFLECTION, limit=1
        )
        if not latest or not latest[0].content.text:
            return ProviderOutput()
        return ProviderOutput(
            text=f"Summary of the conversation so far: {latest[0].content.text}",
            values={"reflection": latest[0].content.text},
        )


class GoalsProvider(Section):
    """How to record progress on the open goals (the kernel lists their objectives)."""

    name = "goals"
    description = "Goal ids and next objectives, for UPDATE_GOAL."
    position = 30
    timeout_s = 1.0
    max_tokens = 200

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        open_goals = [g for g in state.goals if not g.finished]
        if not open_goals:
            return ProviderOutput()
        lines = ["Goal progress (mark objectives done with UPDATE_GOAL, objective = number):"]
        for goal in open_goals:
            pending = [i for i, o in enumerate(goal.objectives, 1) if not o.completed]
            done = len(goal.objectives) - len(pending)
            nxt = f"next is objective {pending[0]}" if pending else "all objectives done"
            lines.append(
                f"- {goal.name!r} (goal {goal.id}): {done}/{len(goal.objectives)} done, {nxt}."
            )
        return ProviderOutput(
            text="\n".join(lines), values={"open_goals": [g.id for g in open_goals]}
        )


class AttachmentsProvider(Section):
    """The attachments of the current message: title, type, link and text."""

    name = "attachments"
    description = "Files and links attached to the current message."
    position = 40
    timeout_s = 1.0
    max_tokens = 800

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        attachments = message.content.attachments
        if not attachments:
            return ProviderOutput()
        lines = ["Attachments of the current message:"]
        share = (self.max_tokens or 800) // len(attachments) - 20
        for index, attachment in enumerate(attachments, 1):
            meta = [m for m in (attachment.content_type, attachment.url) if m]
            title = attachment.title or attachment.url or f"attachment {index}"
            line = f"{index}. {title}" + (f" ({', '.join(meta)})" if meta else "")
            if attachment.text:
                line += f":\n{fit(runtime, attachment.text.strip(), share)}"
            lines.append(line)
        return ProviderOutput(
            text="\n".join(lines), values={"attachments": [a.id for a in attachments]}
        )


class ActionsProvider(Section):
    """The catalogue of offered actions, with similes and an example each."""

    name = "actions"
    description = "What the agent can do for this message."
    position = 50
    trusted = True  # the agent's own instructions
    stable = True  # changes only when the offered actions do
    timeout_s = 1.0
    max_tokens = 700

    async def section(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        if not state.actions:
            return ProviderOutput()
        agent = runtime.character.name
        lines = ["Actions you can take (name them in your answer's actions):"]
        for spec in state.actions:
            line = f"- {spec.name}: {spec.description}"
            action = runtime.actions.find(spec.name)
            if action is not None and action.similes:
                line += f" (also: {', '.join(action.similes[:4])})"
            if action is not None and action.examples:
                turns = [
                    f"{_fill(str(t.get('name', '')), agent)}: "
                    f"{_fill(str((t.get('content') or {}).get('text', '')), agent)}"
                    + (
                        f" [{', '.join((t.get('content') or {}).get('actions', []))}]"
                        if (t.get("content") or {}).get("actions")
                        else ""
                    )
                    for t in action.examples[0]
                ]
                line += "\n  e.g. " + " / ".join(turns)
            lines.append(line)
        return ProviderOutput(
            text="\n".join(lines), values={"actions": [s.name for s in state.actions]}
        )


class KnowledgeProvider(Provider):
    """Ingests the character's knowledge at start-up; on request, searches it.

    Dynamic: the kernel already retrieves knowledge fragments for every message
    that has an embedding, so this provider never runs per message by default.
    """

    name = "knowledge"
    description = "The character's knowledge documents (ingested at start-up)."
    dynamic = True
    position = 60
    timeout_s = 3.0
    max_tokens = 800

    async def setup(self, runtime: AgentRuntime) -> None:
        if not settings_for(runtime).knowledge_on_start or not runtime.character.knowledge:
            return
        from carrier_plugin_bootstrap.knowledge import ingest_character_knowledge

        report = await ingest_character_knowledge(runtime)
        logger.info("Knowledge of %s: %s", runtime.character.name, report)

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        from carrier_plugin_bootstrap.knowledge import search_knowledge

        hits = await search_knowledge(runtime, message.content.text, limit=5)
        known = {s.memory.id for s in state.knowledge}
        fresh = [h for h in hits if h.memory.id not in known]
        if not fresh:
            return ProviderOutput()
        return ProviderOutput(
            text="Relevant knowledge:\n" + "\n".join(f"- {h.memory.content.text}" for h in fresh),
            data={"fragments": [h.memory.id for h in fresh]},
        )


#: Every provider of the plugin, by name.
PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (
        CharacterProvider,
        TimeProvider,
        EntitiesProvider,
        SenderFactsProvider,
        RelevantMemoriesProvider,
        ReflectionProvider,
        GoalsProvider,
        AttachmentsProvider,
        ActionsProvider,
        KnowledgeProvider,
    )
}
