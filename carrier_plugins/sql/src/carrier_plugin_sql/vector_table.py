"""The columns of the numpy vector index: unit vectors and the codes filters compare.

One :class:`Table` holds the whole index; smaller ones hold single entities' rows
(:mod:`.vector_blocks`). Filters are boolean masks over a table's columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carrier.types import MemoryScope

__all__ = ["AGENT_SCOPE", "DIRECT_SCOPE", "FEW_ROWS", "SCOPE_CODES", "Codes", "Table"]

#: ``memories.scope`` values as codes of the ``scopes`` column.
SCOPE_CODES = {scope.value: code for code, scope in enumerate(MemoryScope)}
AGENT_SCOPE, DIRECT_SCOPE = SCOPE_CODES[MemoryScope.AGENT], SCOPE_CODES[MemoryScope.DIRECT]

#: Up to this many new rows, :meth:`Table.penalties` computes row by row.
FEW_ROWS = 8

#: The code columns, with their types.
_COLUMNS = {
    "seqs": np.int64,
    "agents": np.int32,
    "rooms": np.int32,
    "types": np.int16,
    "entities": np.int32,
    "scopes": np.int8,
    "alive": np.bool_,
}


@dataclass(frozen=True, slots=True)
class Codes:
    """A search's filters as column codes (``None``: that filter is not set).

    A scope, if any, allows the agent's own rows, ``scope_room``'s and, when
    ``scope_entity`` is set (a direct scope), that entity's direct rows.
    """

    agent: int
    room: int | None = None
    type: int | None = None
    entity: int | None = None
    scoped: bool = False
    scope_room: int | None = None
    scope_entity: int | None = None


class Table:
    """Growable columns: ``vectors`` (unit, float32) and one code array per filter."""

    def __init__(self, dimension: int, capacity: int) -> None:
        self.size = 0
        self.vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self.seqs = np.zeros(capacity, dtype=np.int64)
        self.agents = np.zeros(capacity, dtype=np.int32)
        self.rooms = np.zeros(capacity, dtype=np.int32)
        self.types = np.zeros(capacity, dtype=np.int16)
        self.entities = np.zeros(capacity, dtype=np.int32)
        self.scopes = np.zeros(capacity, dtype=np.int8)
        self.alive = np.zeros(capacity, dtype=bool)
        # the last codes' penalties (0: selected, -inf: not) for the first rows
        self._penalty_codes: Codes | None = None
        self._penalty = np.zeros(0, dtype=np.float32)
        self._penalty_size = 0

    def reserve(self, needed: int, *, growth: float = 1.5) -> None:
        """Room for ``needed`` rows (capacity grows by ``growth`` at least)."""
        capacity = len(self.seqs)
        if needed <= capacity:
            return
        new = max(needed, int(capacity * growth), 16)
        vectors = np.zeros((new, self.vectors.shape[1]), dtype=np.float32)
        vectors[: self.size] = self.vectors[: self.size]
        self.vectors = vectors
        for name, dtype in _COLUMNS.items():
            grown = np.zeros(new, dtype=dtype)
            grown[: self.size] = getattr(self, name)[: self.size]
            setattr(self, name, grown)

    def extend(self, source: Table, rows: npt.NDArray[np.int64], *, growth: float = 2.0) -> None:
        """Append ``source``'s ``rows``."""
        start = self.size
        end = start + len(rows)
        self.reserve(end, growth=growth)
        self.vectors[start:end] = source.vectors[rows]
        for name in _COLUMNS:
            getattr(self, name)[start:end] = getattr(source, name)[rows]
        self.size = end

    def remove(self, row: int) -> None:
        """Mark ``row`` removed."""
        self.alive[row] = False
        self._penalty_codes = None

    def append_row(self, source: Table, row: int) -> None:
        """Append ``source``'s ``row`` (what :meth:`extend` does, in scalar steps)."""
        end = self.size + 1
        self.reserve(end, growth=2.0)
        self.vectors[self.size] = source.vectors[row]
        for name in _COLUMNS:
            getattr(self, name)[self.size] = getattr(source, name)[row]
        self.size = end

    def mask(self, codes: Codes, start: int = 0) -> npt.NDArray[np.bool_]:
        """Which rows from ``start`` on ``codes`` selects (alive ones only)."""
        rows = slice(start, self.size)
        mask = self.alive[rows] & (self.agents[rows] == codes.agent)
        if codes.room is not None:
            mask &= self.rooms[rows] == codes.room
        if codes.type is not None:
            mask &= self.types[rows] == codes.type
        if codes.entity is not None:
            mask &= self.entities[rows] == codes.entity
        if codes.scoped:
            scopes = self.scopes[rows]
            allowed = scopes == AGENT_SCOPE
            if codes.scope_room is not None:
                allowed |= self.rooms[rows] == codes.scope_room
            if codes.scope_entity is not None:
                allowed |= (scopes == DIRECT_SCOPE) & (self.entities[rows] == codes.scope_entity)
            mask &= allowed
        return mask

    def penalties(self, codes: Codes) -> npt.NDArray[np.float32]:
        """0 for each row ``codes`` selects, ``-inf`` for the others: added to the
        scores, one operation filters them. Kept for the last codes and extended as
        rows are added, so an entity's repeated searches compute only new rows'."""
        n = self.size
        if codes != self._penalty_codes:
            self._penalty_codes, self._penalty_size = codes, 0
        if len(self._penalty) < n:
            grown = np.zeros(len(self.seqs), dtype=np.float32)
            grown[: self._penalty_size] = self._penalty[: self._penalty_size]
            self._penalty = grown
        start = self._penalty_size
        if n - start > FEW_ROWS:
            self._penalty[start:n] = np.where(self.mask(codes, start), 0.0, -np.inf)
        else:  # a row or two since the last search: cheaper one by one than in numpy calls
            for row in range(start, n):
                self._penalty[row] = 0.0 if self._selects(codes, row) else -np.inf
        self._penalty_size = n
        return self._penalty[:n]

    def _selects(self, codes: Codes, row: int) -> bool:
        """Whether ``codes`` selects ``row`` (what :meth:`mask` computes, for one row)."""
        room, entity, scope = int(self.rooms[row]), int(self.entities[row]), int(self.scopes[row])
        if not (self.alive[row] and self.agents[row] == codes.agent):
            return False
        if codes.room is not None and room != codes.room:
            return False
        if codes.type is not None and self.types[row] != codes.type:
            return False
        if codes.entity is not None and entity != codes.entity:
            return False
        return (
            not codes.scoped
            or scope == AGENT_SCOPE
            or room == codes.scope_room
            or (
                scope == DIRECT_SCOPE
                and codes.scope_entity is not None
                and entity == codes.scope_entity
            )
        )
