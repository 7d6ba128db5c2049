"""Pydantic models that cross hooks and steps.

Every step of the loop takes and returns these models, so each can be serialized
(``model_dump_json``) and checkpointed by a durable executor. Field names are
snake_case in Python and accept ElizaOS's camelCase spellings on input
(``roomId``, ``inReplyTo``); ``model_dump(by_alias=True)`` writes camelCase back.
"""

from __future__ import annotations

import os
import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel

__all__ = [
    "DIRECT_ROOM_TYPES",
    "ActionCall",
    "ActionResult",
    "ActionSpec",
    "Attachment",
    "CarrierModel",
    "ChatMessage",
    "Content",
    "Entity",
    "EvaluatorResult",
    "Event",
    "EventType",
    "Goal",
    "GoalStatus",
    "IncomingMessage",
    "Memory",
    "MemoryScope",
    "MemoryType",
    "ModelClass",
    "ModelRequest",
    "ModelResponse",
    "Objective",
    "Participant",
    "ParticipantState",
    "ProviderOutput",
    "Reply",
    "RespondDecision",
    "Role",
    "Room",
    "RoomType",
    "ScoredMemory",
    "SearchScope",
    "State",
    "StreamChunk",
    "Task",
    "TaskStatus",
    "Usage",
    "new_id",
    "now",
]

#: Namespace for deterministic ids derived from names (agents, rooms, users).
ID_NAMESPACE = uuid.UUID("6f1c3c2e-8c1b-4d2e-9b1a-3a9e0c2f7d10")


def new_id(seed: str | None = None) -> str:
    """A fresh id, or a deterministic one derived from ``seed`` (a version-5 UUID).

    A fresh id is a time-ordered UUID, laid out as RFC 9562's version 7: the
    millisecond it was made, then 74 random bits (unguessable, like a version 4).
    Stores index memories by id; ids that grow with time add to the end of that
    index, where a random id touched a random page of it: with a thousand active
    rooms, every message dirtied pages all over the database file, and the WAL
    checkpoints that write them back took a fifth of the loop's time. Never order
    by id: ids made in the same millisecond are in random order.
    """
    if seed is None:
        return str(uuid.UUID(int=_time_ordered_bits()))
    return str(uuid.uuid5(ID_NAMESPACE, seed))


def _time_ordered_bits() -> int:
    """128 bits: 48 of Unix milliseconds, version 7, 12 random, variant, 62 random."""
    random_bits = int.from_bytes(os.urandom(10))
    return (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (random_bits >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | random_bits & ((1 << 62) - 1)
    )


def now() -> float:
    """Seconds since the epoch, the unit of every ``created_at`` in Carrier."""
    return time.time()


class CarrierModel(BaseModel):
    """Base of Carrier's models: camelCase aliases accepted, by-name too."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=False,
    )


# ---- Content and memory ---------------------------------------------------------


class Attachment(CarrierModel):
    """A file or link attached to a message."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=new_id)
    url: str | None = None
    title: str | None = None
    source: str | None = None
    content_type: str | None = None
    text: str | None = None
    size: int | None = None


class Content(CarrierModel):
    """What a message says. Unknown fields are kept (ElizaOS adds many)."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    thought: str | None = None
    actions: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=list)
    source: str | None = None
    in_reply_to: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class MemoryType(StrEnum):
    """What kind of memory a record is."""

    MESSAGE = "message"
    FACT = "fact"
    DOCUMENT = "document"
    FRAGMENT = "fragment"
    DESCRIPTION = "description"
    REFLECTION = "reflection"
    CUSTOM = "custom"


class MemoryScope(StrEnum):
    """Where a memory may reach a prompt (``docs/scope.md``).

    ``ROOM``: only in the room it was stored in (group messages, group facts,
    reflections; the default, so an unmarked memory never leaks). ``DIRECT``: its
    room, and every *direct* conversation with its subject (``entity_id``): what a
    user said about themselves in a DM follows them to their other DMs, never into a
    group. ``AGENT``: everywhere: the agent's own knowledge (character, ``carrier
    knowledge add``), never written from a user's room.
    """

    ROOM = "room"
    DIRECT = "direct"
    AGENT = "agent"


class Memory(CarrierModel):
    """One stored record: a message, a fact, a knowledge fragment, ...

    ``entity_id`` is who wrote a message, or whom a fact is about (its subject);
    ``scope`` says where it may be seen (see :class:`MemoryScope`).
    """

    id: str = Field(default_factory=new_id)
    agent_id: str
    entity_id: str
    room_id: str
    world_id: str | None = None
    type: MemoryType = MemoryType.MESSAGE
    content: Content = Field(default_factory=Content)
    embedding: list[float] | None = None
    created_at: float = Field(default_factory=now)
    unique: bool = False
    scope: MemoryScope = MemoryScope.ROOM
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchScope(CarrierModel):
    """What a prompt in one conversation may see; every store read for a prompt takes one.

    A memory is visible when it is the agent's own (``AGENT``), was stored in
    ``room_id``, or — when this is a direct conversation (``direct``) with
    ``entity_id`` — it is a ``DIRECT`` memory about that same entity.
    """

    room_id: str
    entity_id: str | None = None
    direct: bool = False

    def allows(self, memory: Memory) -> bool:
        """Whether ``memory`` may reach a prompt in this scope."""
        if memory.scope is MemoryScope.AGENT or memory.room_id == self.room_id:
            return True
        return (
            self.direct
            and memory.scope is MemoryScope.DIRECT
            and self.entity_id is not None
            and memory.entity_id == self.entity_id
        )


class ScoredMemory(CarrierModel):
    """A memory found by semantic search, with its cosine similarity."""

    memory: Memory
    similarity: float


# ---- Connection records -----------------------------------------------------


class Entity(CarrierModel):
    """A user, another agent, or the agent itself."""

    id: str
    agent_id: str
    names: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RoomType(StrEnum):
    """Where a conversation happens; decides the default should-respond policy."""

    DIRECT = "direct"
    GROUP = "group"
    SELF = "self"
    API = "api"
    FEED = "feed"
    THREAD = "thread"
    VOICE = "voice"


#: Room types with exactly one user besides the agent: their memories are ``DIRECT``.
DIRECT_ROOM_TYPES = frozenset({RoomType.DIRECT, RoomType.API})


class Room(CarrierModel):
    """A conversation: a DM, a channel, the agent's own autonomous room.

    ``owner_id`` is the one user of a direct room, fixed when the room is created
    (``MemoryStore.create_room``): nobody else may join it.
    """

    id: str
    agent_id: str
    name: str | None = None
    source: str = "direct"
    type: RoomType = RoomType.DIRECT
    channel_id: str | None = None
    world_id: str | None = None
    owner_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def direct(self) -> bool:
        """Whether this is a direct conversation (one user besides the agent)."""
        return self.type in DIRECT_ROOM_TYPES


class ParticipantState(StrEnum):
    """How the agent follows a room."""

    NONE = "none"
    FOLLOWED = "followed"
    MUTED = "muted"


class Role(StrEnum):
    """What a participant may make the agent do."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class Participant(CarrierModel):
    """An entity's membership of a room."""

    room_id: str
    entity_id: str
    state: ParticipantState = ParticipantState.NONE
    role: Role = Role.MEMBER


# ---- Goals ------------------------------------------------------------------------


class GoalStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"


class Objective(CarrierModel):
    description: str
    completed: bool = False


class Goal(CarrierModel):
    """Something the agent works toward, made of objectives."""

    id: str = Field(default_factory=new_id)
    agent_id: str
    room_id: str | None = None
    entity_id: str | None = None
    name: str
    status: GoalStatus = GoalStatus.IN_PROGRESS
    objectives: list[Objective] = Field(default_factory=list)
    created_at: float = Field(default_factory=now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Done or failed, or every objective completed."""
        if self.status is not GoalStatus.IN_PROGRESS:
            return True
        return bool(self.objectives) and all(o.completed for o in self.objectives)


class TaskStatus(StrEnum):
    """Where a scheduled task stands (docs/tasks.md)."""

    SCHEDULED = "scheduled"
    DONE = "done"
    FAILED = "failed"


class Task(CarrierModel):
    """Work scheduled for the agent: a name, tags, an optional due time.

    A task with a ``worker`` (a registered task worker's name) runs when ``due_at``
    comes: once, or again every ``interval_s`` seconds, or at each time of the
    ``cron`` expression (parsed by the plugin that offers cron). A failed run is
    retried after ``backoff_s`` (doubling) until ``max_attempts``, then ``FAILED``.
    """

    id: str = Field(default_factory=new_id)
    agent_id: str
    name: str
    description: str = ""
    room_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    due_at: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=now)
    worker: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    interval_s: float | None = Field(default=None, gt=0)
    cron: str | None = None
    status: TaskStatus = TaskStatus.SCHEDULED
    runs: int = 0
    attempts: int = 0
    max_attempts: int = Field(default=3, ge=1)
    backoff_s: float = Field(default=1.0, ge=0)
    last_run_at: float | None = None
    last_error: str | None = None
    created_by: str | None = None


# ---- Model requests and responses -------------------------------------------------


class ModelClass(StrEnum):
    """The three classes of model a runtime resolves to backends."""

    SMALL = "small"
    LARGE = "large"
    EMBEDDING = "embedding"


class ChatMessage(CarrierModel):
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    name: str | None = None


class ActionSpec(CarrierModel):
    """An action offered to the model: name, description, JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ActionCall(CarrierModel):
    """The model's choice of an action, with its arguments."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Usage(CarrierModel):
    """Tokens one model call used, as the backend reported them.

    ``input_tokens`` counts the whole prompt, including the part served from the
    provider's prompt cache (``cache_read_input_tokens``: OpenAI's ``cached_tokens``,
    Anthropic's ``cache_read_input_tokens``, llama.cpp's reused ``cache_n``) and the
    part written to it (``cache_write_input_tokens``: Anthropic's
    ``cache_creation_input_tokens``). ``None``: the backend did not say.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


class ModelRequest(CarrierModel):
    """What the loop asks a model: system prompt, chat, offered actions, limits."""

    model_class: ModelClass = ModelClass.LARGE
    system: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    response_schema: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelResponse(CarrierModel):
    """What a model answered: text, action calls, token usage."""

    text: str = ""
    thought: str | None = None
    action_calls: list[ActionCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    structured: Any = None


class StreamChunk(CarrierModel):
    """One piece of a streamed response: a text delta, or the final response."""

    text: str = ""
    response: ModelResponse | None = None


# ---- Actions, providers, evaluators ------------------------------------------------


class ActionResult(CarrierModel):
    """What running an action produced."""

    name: str
    success: bool = True
    text: str | None = None
    error: str | None = None
    messages: list[Content] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    continue_chain: bool = False
    suppress_reply: bool = False


class ProviderOutput(CarrierModel):
    """A provider's contribution to the state: prompt text plus structured values.

    ``trusted`` and ``label`` are set by the kernel from the provider (its ``trusted``
    flag and its description), never by the provider's own output.
    """

    text: str = ""
    values: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    trusted: bool = False
    label: str = ""


class EvaluatorResult(CarrierModel):
    """What an evaluator's ``handler`` produced; collected in ``Reply.evaluator_results``."""

    name: str
    success: bool = True
    error: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class RespondDecision(StrEnum):
    """Answer of ``carrier_choose_should_respond``."""

    RESPOND = "respond"
    IGNORE = "ignore"
    ASK_MODEL = "ask_model"


# ---- The loop's inputs, state and outputs --------------------------------------------


class IncomingMessage(CarrierModel):
    """A message as a client hands it to the runtime, whatever the platform."""

    text: str = ""
    user_id: str = "user"
    user_name: str | None = None
    room_id: str | None = None
    room_type: RoomType = RoomType.DIRECT
    source: str = "direct"
    world_id: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    role: Role = Role.MEMBER
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Tracing context that came with the message (W3C ``traceparent``, ...): set by an
    #: executor that ships it to another process (``carrier_trace_context``) or by a
    #: client from its request; handed to observers in ``run_started``, never stored.
    trace_context: dict[str, str] = Field(default_factory=dict)


class State(CarrierModel):
    """Everything the prompt is made from, composed for one message."""

    agent_id: str
    agent_name: str
    room: Room
    message: Memory
    sender: Entity | None = None
    #: What this prompt may see; pass it to every store read (``docs/scope.md``).
    scope: SearchScope | None = None
    recent_messages: list[Memory] = Field(default_factory=list)
    actors: list[Entity] = Field(default_factory=list)
    facts: list[ScoredMemory] = Field(default_factory=list)
    goals: list[Goal] = Field(default_factory=list)
    knowledge: list[ScoredMemory] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    providers: dict[str, ProviderOutput] = Field(default_factory=dict)
    action_results: list[ActionResult] = Field(default_factory=list)
    step: int = 0
    #: While an action's handler runs: its call's key, ``"{message_id}:{step}:{index}"``,
    #: the same in every replay of the message (``carrier.steps``). Pass it to anything
    #: with external effects (payments, posts, e-mails) so a replay does not repeat them.
    idempotency_key: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)


class Reply(CarrierModel):
    """The outcome of handling one message.

    Clients get it as soon as the responses are stored; the evaluators run after that
    (``evaluator_results`` fills when they are done: ``await reply.evaluated()``).
    ``in_progress``: another process holds the message's run; its answer will be stored.
    """

    message: Memory
    responses: list[Memory] = Field(default_factory=list)
    action_results: list[ActionResult] = Field(default_factory=list)
    evaluator_results: list[EvaluatorResult] = Field(default_factory=list)
    ignored: bool = False
    duplicate: bool = False
    in_progress: bool = False
    error: str | None = None
    #: What ``AgentRuntime.finish`` still has to do (evaluators, the lease); kernel-private.
    _pending: Any = PrivateAttr(default=None)
    _finished: Any = PrivateAttr(default=None)

    @property
    def texts(self) -> list[str]:
        """The text of each message the agent sent."""
        return [m.content.text for m in self.responses if m.content.text]

    @property
    def finishing(self) -> bool:
        """Whether evaluators (or the run's release) are still to run for this reply."""
        return self._pending is not None

    async def evaluated(self) -> list[EvaluatorResult]:
        """Wait until the evaluators have run for this message; their results."""
        if self._finished is not None:
            await self._finished.wait()
        return self.evaluator_results


class EventType(StrEnum):
    """Every stage of the loop emits one of these."""

    RUN_STARTED = "run_started"
    MESSAGE_RECEIVED = "message_received"
    CONNECTED = "connected"
    MESSAGE_STORED = "message_stored"
    SHOULD_RESPOND = "should_respond"
    STATE_COMPOSED = "state_composed"
    CONTEXT_COMPOSED = "context_composed"
    MODEL_RETRY = "model_retry"
    MODEL_FALLBACK = "model_fallback"
    MODEL_USED = "model_used"
    ACTION_STARTED = "action_started"
    ACTION_COMPLETED = "action_completed"
    ACTION_FAILED = "action_failed"
    PROVIDER_FAILED = "provider_failed"
    EVALUATOR_COMPLETED = "evaluator_completed"
    EVALUATOR_FAILED = "evaluator_failed"
    MESSAGE_SENT = "message_sent"
    RUN_ENDED = "run_ended"
    RUN_FAILED = "run_failed"
    GOAL_STEP = "goal_step"
    MEMORY_REJECTED = "memory_rejected"
    MODEL_WARMED = "model_warmed"


class Event(CarrierModel):
    """One observation of the loop, with the stage's duration."""

    type: EventType
    agent_id: str
    room_id: str | None = None
    message_id: str | None = None
    duration_ms: float = 0.0
    at: float = Field(default_factory=now)
    data: dict[str, Any] = Field(default_factory=dict)
