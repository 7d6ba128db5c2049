"""Exact vector search in RAM with numpy: the default search path.

The embeddings table is the source of truth; this index mirrors it as one
float32 matrix of unit vectors plus per-row filter codes (agent, room, type,
entity, scope), so filters, a ``SearchScope`` included, are boolean masks.
It catches up on rows added since its last look (by ``memory_seq``, which only
grows), so writes by other processes are seen by the next search.

Measured on a 2-core machine, a matrix-vector product over 1M × 384 float32
takes ~60 ms, against ~380 ms for sqlite-vec's brute-force ``vec0`` scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from carrier.types import MemoryScope, SearchScope

__all__ = ["VectorIndex", "decode", "encode", "unit"]

_F32 = np.dtype("<f4")
#: ``memories.scope`` values as codes of the index's ``scope`` column.
_SCOPES = {scope.value: code for code, scope in enumerate(MemoryScope)}
_AGENT, _DIRECT = _SCOPES[MemoryScope.AGENT], _SCOPES[MemoryScope.DIRECT]

#: Below this fraction of the rows, a search gathers the selected rows and multiplies
#: only those; above it, one product over the whole matrix is cheaper. Gathering copies
#: the rows into a new array (page faults for a large one): on 2 cores at 100k × 384,
#: gathering 10% of the rows cost ~2.5 ms, 33% ~19 ms, against ~6 ms for the whole
#: product (``benchmarks/retrieval.py --scoped``: a scope sees about 30%).
_GATHER_FRACTION = 0.125

#: An embedding as :meth:`VectorIndex.add_rows` takes it (the columns of ``embeddings``
#: read by ``ops.search_numpy``).
Row = tuple[int, str, str, str, str, str, bytes]


def encode(vector: Iterable[float]) -> bytes:
    """Little-endian float32 bytes of ``vector`` (the stored form)."""
    return np.asarray(vector, dtype=_F32).tobytes()


def decode(blob: bytes) -> list[float]:
    """The floats of a stored vector."""
    return np.frombuffer(blob, dtype=_F32).tolist()  # type: ignore[no-any-return]


def unit(vector: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


class _Codes:
    """Strings to small integers, so filters are vectorized comparisons."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        return self._codes.setdefault(value, len(self._codes))

    def find(self, value: str) -> int | None:
        return self._codes.get(value)


class VectorIndex:
    """Unit vectors of one dimension with agent/room/type/entity/scope codes; exact top-k."""

    def __init__(self, dimension: int, *, capacity: int = 1024) -> None:
        self.dimension = dimension
        #: Highest ``memory_seq`` seen; rows above it are fetched before a search.
        self.last_seq = 0
        self._size = 0
        self._vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._seqs = np.zeros(capacity, dtype=np.int64)
        self._agents = np.zeros(capacity, dtype=np.int32)
        self._rooms = np.zeros(capacity, dtype=np.int32)
        self._types = np.zeros(capacity, dtype=np.int16)
        self._entities = np.zeros(capacity, dtype=np.int32)
        self._scopes = np.zeros(capacity, dtype=np.int8)
        self._alive = np.zeros(capacity, dtype=bool)
        self._position: dict[int, int] = {}
        self._agent_codes = _Codes()
        self._room_codes = _Codes()
        self._type_codes = _Codes()
        self._entity_codes = _Codes()

    def __len__(self) -> int:
        return len(self._position)

    def _grow(self, needed: int) -> None:
        capacity = len(self._seqs)
        if needed <= capacity:
            return
        new = max(needed, capacity + capacity // 2)
        vectors = np.zeros((new, self.dimension), dtype=np.float32)
        vectors[:capacity] = self._vectors
        self._vectors = vectors
        for name in ("_seqs", "_agents", "_rooms", "_types", "_entities", "_scopes", "_alive"):
            old = getattr(self, name)
            grown = np.zeros(new, dtype=old.dtype)
            grown[:capacity] = old
            setattr(self, name, grown)

    def add_rows(self, rows: Sequence[Row]) -> None:
        """Append ``(memory_seq, agent_id, room_id, type, entity_id, scope, float32
        bytes)`` rows."""
        rows = [row for row in rows if row[0] not in self._position]
        if not rows:
            return
        start, count = self._size, len(rows)
        self._grow(start + count)
        block = np.frombuffer(b"".join(row[6] for row in rows), dtype=_F32)
        block = block.reshape(count, self.dimension)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        norms[norms == 0] = 1.0  # a zero vector stays zero
        end = start + count
        self._vectors[start:end] = block / norms
        self._seqs[start:end] = [row[0] for row in rows]
        self._agents[start:end] = [self._agent_codes.code(row[1]) for row in rows]
        self._rooms[start:end] = [self._room_codes.code(row[2]) for row in rows]
        self._types[start:end] = [self._type_codes.code(row[3]) for row in rows]
        self._entities[start:end] = [self._entity_codes.code(row[4]) for row in rows]
        self._scopes[start:end] = [_SCOPES.get(row[5], -1) for row in rows]
        self._alive[start:end] = True
        for offset, row in enumerate(rows):
            self._position[row[0]] = start + offset
        self._size = end
        self.last_seq = max(self.last_seq, int(self._seqs[start:end].max()))

    def remove(self, seq: int) -> None:
        """Forget the vector of memory ``seq`` (if held)."""
        i = self._position.pop(seq, None)
        if i is not None:
            self._alive[i] = False

    def search(
        self,
        query: npt.NDArray[np.float32],
        *,
        agent_id: str,
        room_id: str | None,
        type: str | None,
        limit: int,
        threshold: float,
        entity_id: str | None = None,
        scope: SearchScope | None = None,
    ) -> list[tuple[int, float]]:
        """``(memory_seq, cosine)`` of the best ``limit`` matches ≥ ``threshold``.

        Args:
            query: A unit vector (see :func:`unit`).
            agent_id: Only this agent's memories.
            room_id: Only this room, if given.
            type: Only this memory type, if given.
            limit: How many to return at most.
            threshold: Lowest similarity returned.
            entity_id: Only this entity's memories, if given.
            scope: Only what it allows, if given (``SearchScope.allows``).

        Returns:
            Best first.
        """
        n = self._size
        agent = self._agent_codes.find(agent_id)
        if limit <= 0 or n == 0 or agent is None:
            return []
        mask = self._alive[:n] & (self._agents[:n] == agent)
        for codes, value, column in (
            (self._room_codes, room_id, self._rooms),
            (self._type_codes, type, self._types),
            (self._entity_codes, entity_id, self._entities),
        ):
            if value is not None:
                code = codes.find(value)
                if code is None:
                    return []
                mask &= column[:n] == code
        if scope is not None:
            mask &= self._allowed(scope, n)
        selected = np.flatnonzero(mask)
        if selected.size == 0:
            return []
        if selected.size >= n * _GATHER_FRACTION:  # one product over the whole matrix
            scores = self._vectors[:n] @ query
            scores[~mask] = -np.inf
            candidates = scores
            positions = None
        else:  # few rows: gather them first
            candidates = self._vectors[selected] @ query
            positions = selected
        k = min(limit, candidates.size)
        top = np.argpartition(-candidates, k - 1)[:k] if k < candidates.size else np.arange(k)
        top = top[np.argsort(-candidates[top], kind="stable")]
        found: list[tuple[int, float]] = []
        for j in top:
            score = float(candidates[j])
            if score < threshold or score == -np.inf:
                break
            row = int(j) if positions is None else int(positions[j])
            found.append((int(self._seqs[row]), score))
        return found

    def _allowed(self, scope: SearchScope, n: int) -> npt.NDArray[np.bool_]:
        """Which of the first ``n`` rows ``scope`` allows: the agent's own, the scope's
        room, and (in a direct scope) the direct memories of its entity."""
        scopes = self._scopes[:n]
        allowed: npt.NDArray[np.bool_] = scopes == _AGENT
        room = self._room_codes.find(scope.room_id)
        if room is not None:
            allowed |= self._rooms[:n] == room
        entity = None if scope.entity_id is None else self._entity_codes.find(scope.entity_id)
        if scope.direct and entity is not None:
            allowed |= (scopes == _DIRECT) & (self._entities[:n] == entity)
        return allowed
