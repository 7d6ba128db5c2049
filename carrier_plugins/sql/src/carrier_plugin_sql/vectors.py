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

from carrier.types import SearchScope
from carrier_plugin_sql.vector_blocks import EntityBlocks
from carrier_plugin_sql.vector_table import SCOPE_CODES, Codes, Table

__all__ = ["VectorIndex", "decode", "encode", "unit"]

_F32 = np.dtype("<f4")
#: Below this fraction of the rows, a search gathers the selected rows and multiplies
#: only those; above it, one product over the whole matrix is cheaper. Gathering copies
#: the rows into a new array (page faults for a large one): on 2 cores at 100k × 384,
#: gathering 10% of the rows cost ~2.5 ms, 33% ~19 ms, against ~6 ms for the whole
#: product (``benchmarks/retrieval.py --scoped``: a scope sees about 30%).
_GATHER_FRACTION = 0.125

#: Up to this many scores, the best are found by a stable sort rather than
#: ``argpartition``, whose introselect slows down several times over on many equal
#: scores (~26 µs against ~1 µs for 400 scores of 4 distinct values).
_SORT_ROWS = 4096


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
        self._table = Table(dimension, capacity)
        self._position: dict[int, int] = {}
        self._agent_codes = _Codes()
        self._room_codes = _Codes()
        self._type_codes = _Codes()
        self._entity_codes = _Codes()
        self._blocks = EntityBlocks(dimension)
        self._last_query: tuple[Sequence[float], npt.NDArray[np.float32]] = ([], np.zeros(0))

    def __len__(self) -> int:
        return len(self._position)

    def unit_query(self, query: Sequence[float]) -> npt.NDArray[np.float32]:
        """``query`` scaled to length 1. The last one is kept: the searches of one
        message (facts, knowledge, earlier words) share its embedding."""
        floats = query if isinstance(query, list) else list(query)
        if floats != self._last_query[0]:  # the same floats: compared by identity first
            self._last_query = (list(floats), unit(np.asarray(floats, dtype=np.float32)))
        return self._last_query[1]

    def add_rows(self, rows: Sequence[Row]) -> None:
        """Append ``(memory_seq, agent_id, room_id, type, entity_id, scope, float32
        bytes)`` rows."""
        rows = [row for row in rows if row[0] not in self._position]
        if not rows:
            return
        table = self._table
        start, count = table.size, len(rows)
        table.reserve(start + count)
        block = np.frombuffer(b"".join(row[6] for row in rows), dtype=_F32)
        block = block.reshape(count, self.dimension)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        norms[norms == 0] = 1.0  # a zero vector stays zero
        end = start + count
        table.vectors[start:end] = block / norms
        table.seqs[start:end] = [row[0] for row in rows]
        table.agents[start:end] = [self._agent_codes.code(row[1]) for row in rows]
        table.rooms[start:end] = [self._room_codes.code(row[2]) for row in rows]
        table.types[start:end] = [self._type_codes.code(row[3]) for row in rows]
        table.entities[start:end] = [self._entity_codes.code(row[4]) for row in rows]
        table.scopes[start:end] = [SCOPE_CODES.get(row[5], -1) for row in rows]
        table.alive[start:end] = True
        table.size = end
        self._blocks.added(table, start)
        for offset, row in enumerate(rows):
            self._position[row[0]] = start + offset
        self.last_seq = max(self.last_seq, int(table.seqs[start:end].max()))

    def remove(self, seq: int) -> None:
        """Forget the vector of memory ``seq`` (if held)."""
        i = self._position.pop(seq, None)
        if i is not None:
            self._table.remove(i)
            self._blocks.removed(int(self._table.entities[i]), seq)

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
        codes = self._codes(agent_id, room_id, type, entity_id, scope)
        if limit <= 0 or self._table.size == 0 or codes is None:
            return []
        block = None if codes.entity is None else self._blocks.get(codes.entity, self._table)
        if block is not None:  # one product over the entity's block
            scores = block.vectors[: block.size] @ query
            scores += block.penalties(codes)
            return _best(scores, block.seqs, None, limit, threshold)
        n = self._table.size
        mask = self._table.mask(codes)
        selected = int(np.count_nonzero(mask))
        if selected == 0:
            return []
        if selected >= n * _GATHER_FRACTION:  # one product over the whole matrix
            scores = self._table.vectors[:n] @ query
            scores[~mask] = -np.inf
            return _best(scores, self._table.seqs, None, limit, threshold)
        rows = np.flatnonzero(mask)  # few rows: gather them first
        scores = self._table.vectors[rows] @ query
        return _best(scores, self._table.seqs, rows, limit, threshold)

    def _codes(
        self,
        agent_id: str,
        room_id: str | None,
        type: str | None,
        entity_id: str | None,
        scope: SearchScope | None,
    ) -> Codes | None:
        """The filters as codes; ``None`` when one names a value no row holds."""
        agent = self._agent_codes.find(agent_id)
        room = None if room_id is None else self._room_codes.find(room_id)
        kind = None if type is None else self._type_codes.find(type)
        entity = None if entity_id is None else self._entity_codes.find(entity_id)
        if (
            agent is None
            or (room_id is not None and room is None)
            or (type is not None and kind is None)
            or (entity_id is not None and entity is None)
        ):
            return None
        if scope is None:
            return Codes(agent, room, kind, entity)
        scope_entity = None
        if scope.direct and scope.entity_id is not None:
            scope_entity = self._entity_codes.find(scope.entity_id)
        return Codes(
            agent,
            room,
            kind,
            entity,
            scoped=True,
            scope_room=self._room_codes.find(scope.room_id),
            scope_entity=scope_entity,
        )


def _best(
    scores: npt.NDArray[np.float32],
    seqs: npt.NDArray[np.int64],
    rows: npt.NDArray[np.intp] | None,
    limit: int,
    threshold: float,
) -> list[tuple[int, float]]:
    """``(seq, score)`` of the best ``limit`` scores ≥ ``threshold``, best first (ties:
    the earlier row first). ``rows`` maps a score's position to its row, if not 1:1.
    A few numpy calls and a sort of ``limit`` pairs: each numpy call costs
    microseconds when a message's other work has left the caches cold."""
    n = len(scores)
    k = min(limit, n)
    if n <= _SORT_ROWS:  # a stable sort keeps ties in row order
        top = (-scores).argsort(kind="stable")[:k].tolist()
    else:
        top = scores.argpartition(n - k)[n - k :].tolist()
    pairs = sorted((-float(scores[j]), j) for j in top)
    found: list[tuple[int, float]] = []
    for negative, position in pairs:
        if -negative < threshold or negative == np.inf:
            break
        row = position if rows is None else int(rows[position])
        found.append((int(seqs[row]), -negative))
    return found
