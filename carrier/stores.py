"""``MemoryStore``: the interface of the durable records of agents (memories, rooms,
participants, goals, tasks, the cache, logs), and ``StoreFactory``.

Importable as ``carrier.protocols.MemoryStore``, beside the other interfaces.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from carrier.errors import StoreError
from carrier.types import (
    Entity,
    Goal,
    GoalStatus,
    Memory,
    MemoryType,
    Participant,
    ParticipantState,
    Room,
    ScoredMemory,
    SearchScope,
    Task,
)

__all__ = ["MemoryStore", "StoreFactory", "TurnQuery", "TurnReads", "with_new_memory"]

logger = logging.getLogger("carrier.stores")


@dataclass(frozen=True, slots=True)
class TurnReads:
    """What answering a message reads before its prompt (:meth:`MemoryStore.read_turn`)."""

    #: The agent's own participant record in the room (muted, followed), if any.
    participant: Participant | None
    #: The agent's goals in progress in the room or of no room, oldest first.
    goals: list[Goal]
    #: The room's last messages, oldest first.
    history: list[Memory]
    #: The live values of the cache keys asked for; a key absent or expired is left out.
    cache: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnQuery:
    """What :meth:`MemoryStore.read_turn` is asked: its arguments, to pass along."""

    agent_id: str
    room_id: str
    history_limit: int
    cache_keys: tuple[str, ...] = ()


def with_new_memory(history: list[Memory], memory: Memory, turn: TurnQuery) -> list[Memory]:
    """``history`` (the room's last messages, oldest first, read just before ``memory``
    was stored) as :meth:`MemoryStore.read_turn` would read it just after: ``memory``
    in its place if it belongs there (the turn's agent and room, a message), after
    those of its time (it is the newest row), then the last ``turn.history_limit``.
    For a store whose write and read are one statement that cannot see its own write."""
    if turn.history_limit <= 0 or (memory.agent_id, memory.room_id, memory.type) != (
        turn.agent_id,
        turn.room_id,
        MemoryType.MESSAGE,
    ):
        return history
    index = len(history)
    while index and history[index - 1].created_at > memory.created_at:
        index -= 1
    return [*history[:index], memory, *history[index:]][-turn.history_limit :]


class MemoryStore(ABC):
    """Durable records of one or many agents: entities, rooms, memories, goals, ...

    Every method is safe to call concurrently. ``create_memory`` is idempotent by id.
    Stores are async context managers; ``open`` creates or migrates the schema.
    Memories a store returns may be the very objects it keeps (the builtin store's,
    the SQL store's cache): treat them as read-only; ``model_copy(update=...)`` makes
    a changed one.
    """

    #: URL the store was opened with, secrets removed.
    url: str = ""

    async def open(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Connect and create or migrate the schema."""

    async def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    @abstractmethod
    def embedding_dimension(self) -> int | None:
        """Dimension of the embeddings stored so far; ``None`` until the first one."""

    # agents and entities
    @abstractmethod
    async def upsert_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        """Record an agent (a character) by id."""

    @abstractmethod
    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's record: ``{"id", "name", "data"}``, or ``None``."""

    @abstractmethod
    async def upsert_entity(self, entity: Entity) -> None:
        """Create or replace an entity."""

    @abstractmethod
    async def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        """The entities among ``entity_ids`` that exist, in no particular order."""

    # rooms and participants
    @abstractmethod
    async def upsert_room(self, room: Room) -> None:
        """Create or replace a room."""

    @abstractmethod
    async def get_room(self, room_id: str) -> Room | None:
        """The room, or ``None``."""

    @abstractmethod
    async def create_room(self, room: Room) -> bool:
        """Create ``room`` unless a room with its id exists; ``True`` if this call
        created it. Atomic: of two concurrent calls for one id exactly one returns
        ``True`` and the stored room is that call's (its ``owner_id`` included)."""

    async def create_room_with(self, room: Room, participants: Sequence[Participant]) -> bool:
        """:meth:`create_room`, and only if this call created it, add ``participants``
        (as :meth:`upsert_participant` does): a room the runtime creates for a message
        has its sender and the agent in it. The default makes those calls one by one; a
        store over a network should override it with one round trip."""
        created = await self.create_room(room)
        if created:
            for participant in participants:
                await self.upsert_participant(participant)
        return created

    @abstractmethod
    async def upsert_participant(self, participant: Participant) -> None:
        """Add an entity to a room, or update its state and role."""

    @abstractmethod
    async def get_participants(self, room_id: str) -> list[Participant]:
        """Everyone in the room."""

    @abstractmethod
    async def get_rooms_for_entity(self, entity_id: str) -> list[str]:
        """Ids of the rooms the entity takes part in."""

    async def set_participant_state(
        self, room_id: str, entity_id: str, state: ParticipantState
    ) -> None:
        """Follow, mute or reset the entity's state in the room."""
        current = {p.entity_id: p for p in await self.get_participants(room_id)}
        participant = current.get(entity_id) or Participant(room_id=room_id, entity_id=entity_id)
        await self.upsert_participant(participant.model_copy(update={"state": state}))

    async def get_participant(self, room_id: str, entity_id: str) -> Participant | None:
        """One participant of the room, or ``None``."""
        for participant in await self.get_participants(room_id):
            if participant.entity_id == entity_id:
                return participant
        return None

    async def get_room_with_actors(
        self, room_id: str
    ) -> tuple[Room | None, list[Participant], list[Entity]]:
        """The room (``None``: no room, and nothing else), its participants as
        :meth:`get_participants` orders them, and the entities of those that exist, in
        the same order: what a process reads when it first meets a room that exists.
        The default makes the three reads; a store over a network should override it
        with one round trip (each process meets each room once, so with N workers a
        room costs N of these)."""
        room = await self.get_room(room_id)
        if room is None:
            return None, [], []
        participants = await self.get_participants(room_id)
        ids = [p.entity_id for p in participants]
        found = {e.id: e for e in await self.get_entities(ids)}
        return room, participants, [found[i] for i in ids if i in found]

    async def read_turn(
        self,
        *,
        agent_id: str,
        room_id: str,
        history_limit: int,
        cache_keys: Sequence[str] = (),
    ) -> TurnReads:
        """What the runtime reads to answer a message in ``room_id``: the agent's
        participant record there, its goals in progress in that room or of no room,
        the room's last ``history_limit`` messages (type ``message``) and the values
        of ``cache_keys``, as :meth:`get_participant`, :meth:`get_goals`,
        :meth:`get_memories` and :meth:`get_cache` return them. The default makes
        those reads one by one; a store over a network should override it with one
        round trip (every message makes it)."""
        participant = await self.get_participant(room_id, agent_id)
        in_progress = await self.get_goals(agent_id=agent_id, status=GoalStatus.IN_PROGRESS)
        goals = [g for g in in_progress if g.room_id in (None, room_id)]
        history = await self.get_memories(
            agent_id=agent_id, room_id=room_id, type=MemoryType.MESSAGE, limit=history_limit
        )
        cache: dict[str, Any] = {}
        for key in dict.fromkeys(cache_keys):
            value = await self.get_cache(key)
            if value is not None:
                cache[key] = value
        return TurnReads(participant, goals, history, cache)

    # memories
    @abstractmethod
    async def create_memory(self, memory: Memory) -> bool:
        """Store ``memory``. Returns ``False`` (and changes nothing) if its id exists.

        Raises ``EmbeddingDimensionError`` when the embedding's dimension differs
        from the recorded one.
        """

    async def create_memory_with_cache(
        self,
        memory: Memory,
        entries: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        release: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store ``memory`` and, only if this call created it, add the cache ``entries``
        as :meth:`add_cache` does (where the key is absent or expired; each expiring
        after ``ttl_s``) and delete the ``release`` entries as
        ``compare_and_set_cache(key, value, None)`` does (only where the key holds that
        value). Returns ``True`` only if the memory was created and every entry added:
        ``False`` when its id existed (nothing else written or deleted) and when a live
        entry was in the way (that one kept). An entry that cannot be encoded, or a
        memory that cannot be stored, writes nothing.

        The runtime takes a run's lease with its message and records the last action
        call's outcome with the reply (``carrier.steps``). A store may write the two
        one after the other: another process that sees the message in between and
        leases it keeps its lease (nothing is overwritten; this call returns
        ``False``), and a crash in between leaves a message without its lease, which
        is still unanswered (``recover`` handles it), or a reply without its record,
        which is never replayed. A run with no evaluators releases its lease with its
        reply (``release``). The default creates, then adds, then deletes; a store
        overrides it to save round trips (PostgreSQL: one statement).
        """
        for key, value in {**entries, **(release or {})}.items():
            cache_json(key, value)  # a value that cannot be stored fails before any write
        created = await self.create_memory(memory)
        if not created:
            return False
        added = [await self.add_cache(key, value, ttl_s=ttl_s) for key, value in entries.items()]
        for key, value in (release or {}).items():
            await self.compare_and_set_cache(key, value, None)
        return all(added)

    async def create_memory_reading_turn(
        self,
        memory: Memory,
        entries: Mapping[str, Any],
        turn: TurnQuery,
        *,
        ttl_s: float | None = None,
    ) -> tuple[bool, TurnReads | None]:
        """Store ``memory`` with the cache ``entries`` as :meth:`create_memory_with_cache`
        does, then, if that returned ``True``, read ``turn`` as :meth:`read_turn` does
        once the write is done (``memory`` in the history if it belongs there, the
        entries in ``cache`` if asked for). Returns what the write returned and the
        reads: ``None`` if nothing was written or if the read failed after the write.

        The runtime stores each new message this way (with its run's lease) and
        answers it from the reads. The default makes the two calls; a store over a
        network overrides it with one round trip (PostgreSQL: one statement).
        """
        if not await self.create_memory_with_cache(memory, entries, ttl_s=ttl_s):
            return False, None
        try:
            reads = await self.read_turn(
                agent_id=turn.agent_id,
                room_id=turn.room_id,
                history_limit=turn.history_limit,
                cache_keys=turn.cache_keys,
            )
        except StoreError as exc:  # stored: the caller reads again what it needs
            logger.warning("Memory %s stored; reading its turn failed: %s", memory.id, exc)
            return True, None
        return True, reads

    @abstractmethod
    async def get_memory(self, memory_id: str) -> Memory | None:
        """The memory with that id, or ``None``."""

    async def get_memories_by_id(self, memory_ids: Sequence[str]) -> list[Memory]:
        """The stored memories among ``memory_ids``, in that order (a missing one is left
        out). The default reads them one by one; a store that can should override it
        with one round trip (the SQL stores do)."""
        found = [await self.get_memory(memory_id) for memory_id in dict.fromkeys(memory_ids)]
        return [memory for memory in found if memory is not None]

    @abstractmethod
    async def get_memories(
        self,
        *,
        agent_id: str,
        room_id: str | None = None,
        entity_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 50,
        before: float | None = None,
        scope: SearchScope | None = None,
    ) -> list[Memory]:
        """The newest ``limit`` matching memories created before ``before``, oldest first.

        With ``scope``, only memories that ``scope.allows`` (a prompt's reads pass one;
        ``None`` reads the agent's whole memory, for tools and operators).
        """

    @abstractmethod
    async def count_memories(
        self, *, agent_id: str, room_id: str | None = None, type: MemoryType | None = None
    ) -> int:
        """How many memories match."""

    @abstractmethod
    async def delete_memory(self, memory_id: str) -> bool:
        """Delete one memory; ``False`` if it did not exist."""

    @abstractmethod
    async def search_memories(
        self,
        *,
        agent_id: str,
        embedding: Sequence[float],
        room_id: str | None = None,
        type: MemoryType | None = None,
        limit: int = 10,
        threshold: float = 0.0,
        entity_id: str | None = None,
        scope: SearchScope | None = None,
    ) -> list[ScoredMemory]:
        """Top ``limit`` memories by cosine similarity ≥ ``threshold``, best first.

        ``entity_id`` keeps only memories of that entity (its messages, facts about
        it). With ``scope``, only memories that ``scope.allows``; a scoped search
        returns the same top ``limit`` as filtering an unscoped one would, and
        should cost no more than it.

        Raises ``EmbeddingDimensionError`` when ``embedding`` has the wrong dimension.
        """

    @abstractmethod
    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        """Messages to the agent with no stored response (id ``"{id}-{agent_id}"``),
        oldest first: the work a crash left behind."""

    # goals
    @abstractmethod
    async def upsert_goal(self, goal: Goal) -> None:
        """Create or replace a goal."""

    @abstractmethod
    async def get_goal(self, goal_id: str) -> Goal | None:
        """The goal, or ``None``."""

    @abstractmethod
    async def get_goals(
        self, *, agent_id: str, room_id: str | None = None, status: GoalStatus | None = None
    ) -> list[Goal]:
        """Goals of the agent (optionally of one room, one status), oldest first."""

    # tasks
    @abstractmethod
    async def upsert_task(self, task: Task) -> None:
        """Create or replace a task."""

    @abstractmethod
    async def get_tasks(self, *, agent_id: str, tags: Sequence[str] = ()) -> list[Task]:
        """Tasks of the agent carrying every tag in ``tags``, by due time."""

    async def get_task(self, task_id: str, *, agent_id: str) -> Task | None:
        """One task of the agent, or ``None``. The default scans :meth:`get_tasks`;
        a store with many tasks overrides it with one lookup."""
        return next((t for t in await self.get_tasks(agent_id=agent_id) if t.id == task_id), None)

    async def get_due_tasks(
        self, *, agent_id: str, before: float, limit: int = 10_000
    ) -> list[Task]:
        """Tasks of the agent with a ``due_at`` at or before ``before``, by due time
        (what a scheduler polls). The default filters :meth:`get_tasks`; a store with
        many tasks overrides it with one indexed query."""
        due = [
            t
            for t in await self.get_tasks(agent_id=agent_id)
            if t.due_at is not None and t.due_at <= before
        ]
        return due[:limit]

    @abstractmethod
    async def delete_task(self, task_id: str) -> bool:
        """Delete one task; ``False`` if it did not exist."""

    # cache and logs
    @abstractmethod
    async def get_cache(self, key: str) -> Any:
        """The JSON value under ``key``, or ``None`` if absent or expired."""

    @abstractmethod
    async def set_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store a JSON-serializable value, optionally expiring after ``ttl_s``."""

    @abstractmethod
    async def delete_cache(self, key: str) -> bool:
        """Delete a cache entry; ``False`` if it did not exist."""

    # The cache is also the store's key-value primitive for coordination between
    # processes (leases, recorded steps, plugin state): the three calls below are
    # atomic, and values compare as JSON (``{"a": 1}`` equals ``{"a": 1}``).

    async def add_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` under ``key`` only if the key is absent or expired; ``True``
        if this call stored it (of concurrent calls for one key, exactly one).

        The default is not atomic across processes: a store shared by processes
        overrides it (and the two below) with one atomic statement.
        """
        if await self.get_cache(key) is not None:
            return False
        await self.set_cache(key, value, ttl_s=ttl_s)
        return True

    async def compare_and_set_cache(
        self, key: str, expected: Any, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        """Replace the live value ``expected`` by ``value`` (``None`` deletes the entry),
        atomically; ``False`` and nothing changed if the key holds anything else (or
        nothing: use :meth:`add_cache` to create)."""
        current = await self.get_cache(key)
        if current is None or current != expected:
            return False
        if value is None:
            await self.delete_cache(key)
        else:
            await self.set_cache(key, value, ttl_s=ttl_s)
        return True

    async def increment_cache(
        self, key: str, amount: int = 1, *, ttl_s: float | None = None
    ) -> int:
        """Add ``amount`` to the integer under ``key`` (an absent or expired key counts
        as 0) and return the new value, atomically. ``ttl_s`` applies when the key is
        created. Raises ``StoreError`` if the key holds something other than an integer."""
        current = await self.get_cache(key)
        if current is None:
            await self.set_cache(key, amount, ttl_s=ttl_s)
            return amount
        if not isinstance(current, int) or isinstance(current, bool):
            raise StoreError(
                f"Cache key {key!r} holds {type(current).__name__}, not an integer; "
                f"increment_cache needs an integer (or an absent key)."
            )
        await self.set_cache(key, current + amount)  # keeps no expiry: override to keep it
        return current + amount

    @abstractmethod
    async def list_cache(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        """Live entries whose key starts with ``prefix``, by key: ``(key, value)``."""

    @abstractmethod
    async def log(
        self, *, agent_id: str, room_id: str | None, type: str, body: dict[str, Any]
    ) -> None:
        """Append a log entry (actions run, errors, model use)."""

    @abstractmethod
    async def get_logs(
        self, *, agent_id: str, room_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest log entries last: ``{"type", "room_id", "body", "created_at"}``."""


#: ``factory(url, **options) -> MemoryStore``, registered under a URL scheme.
StoreFactory = Callable[..., MemoryStore]


def cache_json(key: str, value: Any) -> str:
    """A cache value as JSON text, or ``StoreError`` naming the key."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"Cache value for {key!r} is not JSON-serializable: {exc}. "
            f"Store plain dicts, lists, strings and numbers."
        ) from exc
