"""A read's filters as SQL conditions, and a ``SearchScope`` as disjoint indexed sets.

A memory is visible in a scope when it is the agent's own (``scope = 'agent'``), was
stored in the scope's room, or, in a direct scope, is a direct memory of the scope's
entity (``carrier.types.SearchScope.allows``). One ``WHERE`` with that ``OR`` would
leave the planner a filter over the agent's whole memory; instead a scoped read is a
``UNION ALL`` of three disjoint sets, each a range of its own index (see
:mod:`.schema`): the room's memories, the entity's direct memories in other rooms,
the agent's own memories in other rooms. The same conditions serve ``memories`` and
``embeddings`` (which copies the filter columns); placeholders are ``?``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carrier.types import SearchScope

__all__ = ["Filters", "Part"]


@dataclass(frozen=True, slots=True)
class Part:
    """One set: ``where`` joined by ``AND``, with its ``values`` in order."""

    where: tuple[str, ...]
    values: tuple[Any, ...]

    def sql(self, prefix: str = "") -> str:
        """The conditions, columns prefixed (``"e."``) where a query joins tables."""
        return " AND ".join(prefix + condition for condition in self.where)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of ``get_memories`` and ``search_memories``.

    ``before`` exists only for memories (``created_at``), not for embeddings.
    """

    agent_id: str
    room_id: str | None = None
    entity_id: str | None = None
    type: str | None = None
    before: float | None = None

    def part(self, *extra: tuple[str, Any]) -> Part:
        """The filters and ``extra`` ``(condition, value or None)`` as one set."""
        where, values = ["agent_id = ?"], [self.agent_id]
        for condition, value in (
            ("room_id = ?", self.room_id),
            ("entity_id = ?", self.entity_id),
            ("type = ?", self.type),
            ("created_at < ?", self.before),
            *extra,
        ):
            if "?" not in condition:
                where.append(condition)
            elif value is not None:
                where.append(condition)
                values.append(value)
        return Part(tuple(where), tuple(values))

    def parts(self, scope: SearchScope | None) -> list[Part]:
        """Disjoint sets whose union is what these filters find and ``scope`` allows
        (one set, the filters, without a scope; none when nothing can match)."""
        if scope is None:
            return [self.part()]
        room = scope.room_id
        if self.room_id == room:  # the scope's own room: all of it is visible
            return [self.part()]
        parts = []
        if self.room_id is None:
            parts.append(self.part(("room_id = ?", room)))
        entity = scope.entity_id
        if scope.direct and entity is not None and self.entity_id in (None, entity):
            parts.append(
                self.part(
                    ("scope = 'direct'", None),
                    ("entity_id = ?", None if self.entity_id else entity),
                    ("room_id <> ?", room),
                )
            )
        parts.append(self.part(("scope = 'agent'", None), ("room_id <> ?", room)))
        return parts
