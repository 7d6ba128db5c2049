"""``InMemoryStore``: the builtin ``memory://`` store. Fast, indexed, gone at exit."""

from __future__ import annotations

import bisect
import json
import math
import operator
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from carrier.errors import EmbeddingDimensionError, StoreError
from carrier.protocols import MemoryStore
from carrier.stores import cache_json
from carrier.types import (
    Entity,
    Goal,
    GoalStatus,
    Memory,
    MemoryScope,
    MemoryType,
    Participant,
    Room,
    ScoredMemory,
    SearchScope,
    Task,
)

__all__ = ["InMemoryStore", "cosine"]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 if either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(map(operator.mul, vector, vector)))


class _Timeline:
    """Memories kept sorted by ``created_at``; appends in order are O(1)."""

    __slots__ = ("items", "keys")

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.items: list[Memory] = []

    def add(self, memory: Memory) -> None:
        if not self.keys or memory.created_at >= self.keys[-1]:
            self.keys.append(memory.created_at)
            self.items.append(memory)
        else:
            index = bisect.bisect_right(self.keys, memory.created_at)
            self.keys.insert(index, memory.created_at)
            self.items.insert(index, memory)

    def remove(self, memory: Memory) -> None:
        index = bisect.bisect_left(self.keys, memory.created_at)
        while index < len(self.items) and self.items[index] is not memory:
            index += 1
        if index < len(self.items):
            del self.keys[index]
            del self.items[index]

    def newest(self, limit: int, before: float | None) -> list[Memory]:
        end = len(self.items) if before is None else bisect.bisect_left(self.keys, before)
        return self.items[max(0, end - limit) : end]


class InMemoryStore(MemoryStore):
    """Everything in dicts and sorted lists; nothing survives the process."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._dimension: int | None = None
        self._agents: dict[str, dict[str, Any]] = {}
        self._entities: dict[str, Entity] = {}
        self._rooms: dict[str, Room] = {}
        self._participants: dict[str, dict[str, Participant]] = defaultdict(dict)
        self._entity_rooms: dict[str, set[str]] = defaultdict(set)
        self._memories: dict[str, Memory] = {}
        self._by_room: dict[tuple[str, str], _Timeline] = defaultdict(_Timeline)
        self._by_entity: dict[tuple[str, str], _Timeline] = defaultdict(_Timeline)
        self._by_type: dict[tuple[str, MemoryType], _Timeline] = defaultdict(_Timeline)
        self._by_room_type: dict[tuple[str, str, MemoryType], _Timeline] = defaultdict(_Timeline)
        self._by_entity_type: dict[tuple[str, str, MemoryType], _Timeline] = defaultdict(_Timeline)
        self._by_agent: dict[str, _Timeline] = defaultdict(_Timeline)
        # AGENT-scoped memories by (agent, type) and (agent, None): what every scope sees.
        self._agent_scoped: dict[tuple[str, MemoryType | None], _Timeline] = defaultdict(_Timeline)
        self._norms: dict[str, float] = {}  # embedding norms by memory id, computed once
        self._goals: dict[str, Goal] = {}
        self._tasks: dict[str, Task] = {}
        self._cache: dict[str, tuple[str, float | None]] = {}
        self._logs: list[dict[str, Any]] = []

    @property
    def embedding_dimension(self) -> int | None:
        return self._dimension

    def _check_dimension(self, embedding: Sequence[float]) -> None:
        if self._dimension is None:
            self._dimension = len(embedding)
        elif len(embedding) != self._dimension:
            raise EmbeddingDimensionError(recorded=self._dimension, found=len(embedding))

    # agents and entities
    async def upsert_agent(self, agent_id: str, name: str, data: dict[str, Any]) -> None:
        self._agents[agent_id] = {"id": agent_id, "name": name, "data": dict(data)}

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        return self._agents.get(agent_id)

    async def upsert_entity(self, entity: Entity) -> None:
        self._entities[entity.id] = entity

    async def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        return [self._entities[i] for i in entity_ids if i in self._entities]

    # rooms and participants
    async def upsert_room(self, room: Room) -> None:
        self._rooms[room.id] = room

    async def get_room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def create_room(self, room: Room) -> bool:
        if room.id in self._rooms:
            return False
        self._rooms[room.id] = room
        return True

    async def upsert_participant(self, participant: Participant) -> None:
        self._participants[participant.room_id][participant.entity_id] = participant
        self._entity_rooms[participant.entity_id].add(participant.room_id)

    async def get_participants(self, room_id: str) -> list[Participant]:
        return list(self._participants.get(room_id, {}).values())

    async def get_participant(self, room_id: str, entity_id: str) -> Participant | None:
        return self._participants.get(room_id, {}).get(entity_id)

    async def get_rooms_for_entity(self, entity_id: str) -> list[str]:
        return sorted(self._entity_rooms.get(entity_id, ()))

    # memories
    async def create_memory(self, memory: Memory) -> bool:
        if memory.id in self._memories:
            return False
        if memory.embedding is not None:
            self._check_dimension(memory.embedding)
        self._memories[memory.id] = memory
        self._by_room[(memory.agent_id, memory.room_id)].add(memory)
        self._by_entity[(memory.agent_id, memory.entity_id)].add(memory)
        self._by_type[(memory.agent_id, memory.type)].add(memory)
        self._by_room_type[(memory.agent_id, memory.room_id, memory.type)].add(memory)
        self._by_entity_type[(memory.agent_id, memory.entity_id, memory.type)].add(memory)
        self._by_agent[memory.agent_id].add(memory)
        if memory.scope is MemoryScope.AGENT:
            self._agent_scoped[(memory.agent_id, memory.type)].add(memory)
            self._agent_scoped[(memory.agent_id, None)].add(memory)
        return True

    async def get_memory(self, memory_id: str) -> Memory | None:
        return self._memories.get(memory_id)

    async def get_memories_by_id(self, memory_ids: Sequence[str]) -> list[Memory]:
        found = (self._memories.get(memory_id) for memory_id in dict.fromkeys(memory_ids))
        return [memory for memory in found if memory is not None]

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
        if limit <= 0:
            return []
        if scope is not None:
            return self._scoped(
                agent_id, room_id, entity_id, type, limit=limit, before=before, scope=scope
            )
        # Each (room | entity) [x type] combination has its own timeline: a read scans
        # only what it returns, whatever the history's size.
        if room_id is not None and type is not None:
            timeline = self._by_room_type.get((agent_id, room_id, type))
            extra = entity_id is not None
        elif room_id is not None:
            timeline = self._by_room.get((agent_id, room_id))
            extra = entity_id is not None
        elif entity_id is not None and type is not None:
            timeline = self._by_entity_type.get((agent_id, entity_id, type))
            extra = False
        elif entity_id is not None:
            timeline = self._by_entity.get((agent_id, entity_id))
            extra = False
        elif type is not None:
            timeline = self._by_type.get((agent_id, type))
            extra = False
        else:
            timeline = self._by_agent.get(agent_id)
            extra = False
        if timeline is None:
            return []
        if not extra:
            return timeline.newest(limit, before)
        found: list[Memory] = []
        items = timeline.items
        end = len(items) if before is None else bisect.bisect_left(timeline.keys, before)
        for index in range(end - 1, -1, -1):  # newest first, stop at the limit
            memory = items[index]
            if (entity_id is None or memory.entity_id == entity_id) and (
                type is None or memory.type == type
            ):
                found.append(memory)
                if len(found) == limit:
                    break
        found.reverse()
        return found

    def _scoped(
        self,
        agent_id: str,
        room_id: str | None,
        entity_id: str | None,
        type: MemoryType | None,
        *,
        limit: int,
        before: float | None,
        scope: SearchScope,
    ) -> list[Memory]:
        """The newest ``limit`` matches of a scoped read: the scope's room, the
        subject's direct memories and the agent's own, merged by time."""
        found: list[Memory] = []
        for memory in self._candidates(agent_id, type, scope, room_id, entity_id):
            if (
                (room_id is None or memory.room_id == room_id)
                and (entity_id is None or memory.entity_id == entity_id)
                and (type is None or memory.type == type)
                and (before is None or memory.created_at < before)
                and scope.allows(memory)
            ):
                found.append(memory)
        found.sort(key=lambda m: m.created_at)
        return found[-limit:]

    def _candidates(
        self,
        agent_id: str,
        type: MemoryType | None,
        scope: SearchScope,
        room_id: str | None = None,
        entity_id: str | None = None,
    ) -> list[Memory]:
        """Memories that may pass ``scope`` (a superset, each once), from the indexes."""
        if room_id is not None and room_id != scope.room_id:
            return [m for m in self._room_items(agent_id, room_id, type) if scope.allows(m)]
        seen: dict[str, Memory] = {m.id: m for m in self._room_items(agent_id, scope.room_id, type)}
        if scope.direct and scope.entity_id is not None and entity_id in (None, scope.entity_id):
            key = (agent_id, scope.entity_id)
            items = self._by_entity_type.get((*key, type)) if type else self._by_entity.get(key)
            for memory in items.items if items else ():
                seen.setdefault(memory.id, memory)
        agent_wide = self._agent_scoped.get((agent_id, type))
        for memory in agent_wide.items if agent_wide else ():
            seen.setdefault(memory.id, memory)
        return list(seen.values())

    def _room_items(self, agent_id: str, room_id: str, type: MemoryType | None) -> list[Memory]:
        timeline = (
            self._by_room_type.get((agent_id, room_id, type))
            if type
            else self._by_room.get((agent_id, room_id))
        )
        return timeline.items if timeline else []

    async def count_memories(
        self, *, agent_id: str, room_id: str | None = None, type: MemoryType | None = None
    ) -> int:
        if room_id is None and type is not None:
            return len(self._by_type.get((agent_id, type), _Timeline()).items)
        if room_id is None:
            return len(self._by_agent.get(agent_id, _Timeline()).items)
        if type is not None:
            return len(self._by_room_type.get((agent_id, room_id, type), _Timeline()).items)
        return len(self._by_room.get((agent_id, room_id), _Timeline()).items)

    async def delete_memory(self, memory_id: str) -> bool:
        memory = self._memories.pop(memory_id, None)
        if memory is None:
            return False
        self._norms.pop(memory_id, None)
        self._by_room[(memory.agent_id, memory.room_id)].remove(memory)
        self._by_entity[(memory.agent_id, memory.entity_id)].remove(memory)
        self._by_type[(memory.agent_id, memory.type)].remove(memory)
        self._by_room_type[(memory.agent_id, memory.room_id, memory.type)].remove(memory)
        self._by_entity_type[(memory.agent_id, memory.entity_id, memory.type)].remove(memory)
        self._by_agent[memory.agent_id].remove(memory)
        if memory.scope is MemoryScope.AGENT:
            self._agent_scoped[(memory.agent_id, memory.type)].remove(memory)
            self._agent_scoped[(memory.agent_id, None)].remove(memory)
        return True

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
        if self._dimension is not None and len(embedding) != self._dimension:
            raise EmbeddingDimensionError(recorded=self._dimension, found=len(embedding))
        candidates: list[Memory]
        if scope is not None:
            candidates = self._candidates(agent_id, type, scope, room_id, entity_id)
        elif entity_id is not None:
            key = (agent_id, entity_id)
            timeline = self._by_entity_type.get((*key, type)) if type else self._by_entity.get(key)
            candidates = timeline.items if timeline else []
        elif type is not None:
            candidates = self._by_type.get((agent_id, type), _Timeline()).items
        elif room_id is not None:
            candidates = self._by_room.get((agent_id, room_id), _Timeline()).items
        else:
            candidates = self._by_agent.get(agent_id, _Timeline()).items
        query_norm = _norm(embedding)
        norms = self._norms
        scored = []
        for m in candidates:
            if (
                m.embedding is None
                or (room_id is not None and m.room_id != room_id)
                or (entity_id is not None and m.entity_id != entity_id)
                or (type is not None and m.type != type)
                or (scope is not None and not scope.allows(m))
            ):
                continue
            norm = norms.get(m.id)
            if norm is None:
                norm = norms[m.id] = _norm(m.embedding)
            denominator = norm * query_norm
            dot = sum(map(operator.mul, embedding, m.embedding))
            similarity = dot / denominator if denominator else 0.0
            if similarity >= threshold:
                scored.append(ScoredMemory(memory=m, similarity=similarity))
        scored.sort(key=lambda s: s.similarity, reverse=True)
        return scored[:limit]

    async def unanswered_messages(self, *, agent_id: str, limit: int = 100) -> list[Memory]:
        found: list[Memory] = []
        for memory in self._by_type.get((agent_id, MemoryType.MESSAGE), _Timeline()).items:
            if memory.entity_id == agent_id or memory.metadata.get("internal"):
                continue
            if f"{memory.id}-{agent_id}" not in self._memories:
                found.append(memory)
                if len(found) == limit:
                    break
        return found

    # goals
    async def upsert_goal(self, goal: Goal) -> None:
        self._goals[goal.id] = goal

    async def get_goal(self, goal_id: str) -> Goal | None:
        return self._goals.get(goal_id)

    async def get_goals(
        self, *, agent_id: str, room_id: str | None = None, status: GoalStatus | None = None
    ) -> list[Goal]:
        goals = [
            g
            for g in self._goals.values()
            if g.agent_id == agent_id
            and (room_id is None or g.room_id == room_id)
            and (status is None or g.status == status)
        ]
        return sorted(goals, key=lambda g: g.created_at)

    # tasks
    async def upsert_task(self, task: Task) -> None:
        self._tasks[task.id] = task

    async def get_tasks(self, *, agent_id: str, tags: Sequence[str] = ()) -> list[Task]:
        tasks = [
            t for t in self._tasks.values() if t.agent_id == agent_id and set(tags) <= set(t.tags)
        ]
        return sorted(tasks, key=lambda t: (t.due_at is None, t.due_at or 0.0, t.created_at))

    async def get_task(self, task_id: str, *, agent_id: str) -> Task | None:
        task = self._tasks.get(task_id)
        return task if task is not None and task.agent_id == agent_id else None

    async def delete_task(self, task_id: str) -> bool:
        return self._tasks.pop(task_id, None) is not None

    # cache and logs
    async def get_cache(self, key: str) -> Any:
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.time():
            del self._cache[key]
            return None
        return json.loads(value)

    async def set_cache(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        self._cache[key] = (cache_json(key, value), None if ttl_s is None else time.time() + ttl_s)

    async def delete_cache(self, key: str) -> bool:
        return self._cache.pop(key, None) is not None

    def _live(self, key: str) -> str | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.time():
            del self._cache[key]
            return None
        return entry[0]

    # add_cache and compare_and_set_cache: the protocol's defaults, atomic here (no
    # call of this store yields to the event loop)

    async def increment_cache(
        self, key: str, amount: int = 1, *, ttl_s: float | None = None
    ) -> int:
        current = self._live(key)
        if current is None:
            await self.set_cache(key, amount, ttl_s=ttl_s)
            return amount
        number = json.loads(current)
        if not isinstance(number, int) or isinstance(number, bool):
            raise StoreError(
                f"Cache key {key!r} holds {type(number).__name__}, not an integer; "
                f"increment_cache needs an integer (or an absent key)."
            )
        expires = self._cache[key][1]
        self._cache[key] = (json.dumps(number + amount), expires)
        return number + amount

    async def list_cache(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        found = []
        for key in sorted(k for k in self._cache if k.startswith(prefix)):
            value = self._live(key)
            if value is not None:
                found.append((key, json.loads(value)))
                if len(found) == limit:
                    break
        return found

    async def log(
        self, *, agent_id: str, room_id: str | None, type: str, body: dict[str, Any]
    ) -> None:
        self._logs.append(
            {
                "agent_id": agent_id,
                "room_id": room_id,
                "type": type,
                "body": body,
                "created_at": time.time(),
            }
        )
        if len(self._logs) > 10_000:
            del self._logs[:1_000]

    async def get_logs(
        self, *, agent_id: str, room_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        logs = [
            entry
            for entry in self._logs
            if entry["agent_id"] == agent_id and (room_id is None or entry["room_id"] == room_id)
        ]
        return logs[-limit:] if limit > 0 else []
