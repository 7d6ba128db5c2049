"""SQL of ``PostgresStore``'s searches and scoped reads.

A search is ``ORDER BY vector <=> query`` over rows that pass a filter (:func:`nearest`):
the HNSW index's order when the planner picks it. That is right for a filter most
rows pass, and wrong for a selective one: the index's nearest candidates are then
mostly rows the filter rejects, and pgvector's iterative scan gives up after
``hnsw.max_scan_tuples`` (20,000) with fewer than ``limit`` found. A search by entity or
scope therefore looks at its sets (:meth:`.scopes.Filters.parts`: the scope's room, its
user's direct memories, the agent's own) first. The statement that reads the
embedding dimension also lists each set, up to :data:`EXACT_ROWS` + 1 ``memory_seq``
values from its btree index alone (:func:`listing`; the indexes hold ``memory_seq``),
and the size of the table. Then:

- every set has at most :data:`EXACT_ROWS` rows (a user's facts, a room's): each is
  searched exactly (:func:`search`), its rows read through its index and its listed
  ``memory_seq`` values, whatever the planner would estimate;
- a set is larger (the agent's knowledge) and the table holds at most
  ``EXACT_ROWS / HNSW_SHARE`` rows: the scope is at least :data:`HNSW_SHARE` of the
  table, which an HNSW scan cannot starve on, so one :func:`nearest` over the whole
  scope answers, at the cost of an unfiltered search;
- a set is larger but the table is larger still: the small sets exactly and the large
  ones through the HNSW index, in one statement (:func:`search`).

No round trip is added to an unscoped search's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from carrier_plugin_sql.scopes import Part

__all__ = [
    "EXACT_ROWS",
    "HNSW_SHARE",
    "hnsw_suffices",
    "listing",
    "nearest",
    "search",
    "set_key",
]

#: Sets of at most this many embeddings are searched exactly. With ``hnsw.ef_search``
#: 200 and 384 dimensions, comparing 1,000 rows costs about what an HNSW search does.
EXACT_ROWS = 1000

#: The share of the table a filter must pass for one HNSW scan over it to find
#: ``limit`` rows well before ``hnsw.max_scan_tuples`` (0.5%: ~100 of 20,000).
HNSW_SHARE = 0.005


def _bind(part: Part, values: list[Any], prefix: str = "") -> str:
    """``part``'s conditions with its ``?`` numbered after ``values`` (which get its
    values), so the text may appear several times in a statement."""
    pieces = part.sql(prefix).split("?")
    text = pieces[0]
    for value, piece in zip(part.values, pieces[1:], strict=True):
        values.append(value)
        text += f"${len(values)}{piece}"
    return text


def scoped_select(memory: str, parts: Sequence[Part], limit: int) -> tuple[str, list[Any]]:
    """The newest ``limit`` memories of the union of ``parts``, newest first.

    Args:
        memory: ``SELECT`` of a memory's columns from ``memories AS m``.
        parts: Disjoint sets (:meth:`.scopes.Filters.parts`).
        limit: How many.

    Returns:
        The statement and its values.
    """
    values: list[Any] = [limit]
    order = "ORDER BY created_at DESC, seq DESC LIMIT $1"
    branches = " UNION ALL ".join(
        f"(SELECT seq, created_at FROM memories WHERE {_bind(part, values)} {order})"
        for part in parts
    )
    return (
        f"{memory} WHERE m.seq IN (SELECT seq FROM ({branches}) AS u {order}) "
        "ORDER BY m.created_at DESC, m.seq DESC",
        values,
    )


def listing(
    first: str, parts: Sequence[Part], known_large: Collection[int] = ()
) -> tuple[str, list[Any]]:
    """``first`` (a scalar subquery with no parameters but ``$1``), then, with
    ``parts``, the table's estimated row count (``reltuples``: -1 before the first
    ``ANALYZE``) and for each part its ``memory_seq`` values if it has at most
    :data:`EXACT_ROWS` (maybe none, as ``text[]``: asyncpg decodes it without first
    looking the type up, as it does ``bigint[]`` on each new connection), else
    ``NULL``. The parts at the indexes
    ``known_large`` are not listed (``NULL``): counting a large set's first
    :data:`EXACT_ROWS` + 1 rows again on every search is what made a scoped search
    cost more than an unscoped one.

    Returns:
        The statement (one row) and its values after ``$1``.
    """
    if not parts:
        return f"SELECT {first}", []
    values: list[Any] = [None]  # $1: the caller's
    columns = [first, "(SELECT reltuples FROM pg_class WHERE oid = 'embeddings'::regclass)"]
    columns += [
        "NULL::text[]"
        if index in known_large
        else f"(SELECT CASE WHEN count(*) <= {EXACT_ROWS} "
        "THEN coalesce(array_agg(s.memory_seq)::text[], '{}') END "
        f"FROM (SELECT e.memory_seq FROM embeddings AS e WHERE {_bind(part, values, 'e.')} "
        f"LIMIT {EXACT_ROWS + 1}) AS s)"
        for index, part in enumerate(parts)
    ]
    return f"SELECT {', '.join(columns)}", values[1:]


def set_key(part: Part) -> tuple[Any, ...]:
    """What names a set across searches: its conditions and values, without the
    scope's room excluded (``room_id <> ?`` takes a room's few rows out of a set of
    thousands, and differs from one room's search to the next)."""
    key: list[Any] = []
    values = iter(part.values)
    for condition in part.where:
        value = next(values) if "?" in condition else None
        if condition != "room_id <> ?":
            key.append((condition, value))
    return tuple(key)


def hnsw_suffices(table_rows: float) -> bool:
    """Whether a set of more than :data:`EXACT_ROWS` rows is at least
    :data:`HNSW_SHARE` of a table of ``table_rows`` (unknown, -1: no)."""
    return 0 < table_rows <= EXACT_ROWS / HNSW_SHARE


def nearest(
    columns: str, query: Sequence[float], parts: Sequence[Part], max_distance: float, limit: int
) -> tuple[str, list[Any]]:
    """The ``limit`` nearest embeddings that pass any of ``parts``, within
    ``max_distance`` (cosine distance, ``1 - threshold``): one ``ORDER BY`` the
    distance, which the HNSW index serves when the planner picks it.

    Args:
        columns: A memory's columns from ``memories AS m``, but its embedding.
        query: The query vector.
        parts: The filter: one part, or the sets of a scope.
        max_distance: ``1 - threshold``.
        limit: How many.

    Returns:
        The statement (its rows: ``columns``, the embedding, then ``distance``,
        nearest first) and its values.
    """
    values: list[Any] = [list(query), max_distance, limit]
    where = " OR ".join(f"({_bind(part, values, 'e.')})" for part in parts)
    # relaxed_order may yield the index's rows slightly out of order: the outer ORDER
    # BY sorts the `limit` rows found.
    return (
        f"SELECT s.* FROM (SELECT {columns}, e.vector, e.vector <=> $1 AS distance "
        "FROM embeddings AS e JOIN memories AS m ON m.seq = e.memory_seq "
        f"WHERE ({where}) AND e.vector <=> $1 <= $2 ORDER BY e.vector <=> $1, e.memory_seq "
        "LIMIT $3) AS s ORDER BY s.distance, s.seq",
        values,
    )


def search(
    columns: str,
    query: Sequence[float],
    small: Sequence[tuple[Part, Sequence[str]]],
    large: Sequence[Part],
    max_distance: float,
    limit: int,
) -> tuple[str, list[Any]]:
    """The ``limit`` nearest embeddings of the sets ``small`` (each with its rows'
    ``memory_seq``, from :func:`listing`: every row compared) and ``large`` (each
    through the HNSW index), within ``max_distance`` (cosine distance).

    A small set is read through its filter's index and its listed ``memory_seq``
    values: both bound the rows, so whichever index the planner picks reads few.

    Args:
        columns: A memory's columns from ``memories AS m``, but its embedding.
        query: The query vector.
        small: The small sets, with their rows' ``memory_seq`` (as text, from :func:`listing`).
        large: The other sets.
        max_distance: ``1 - threshold``.
        limit: How many.

    Returns:
        The statement (its rows: ``columns``, the embedding, then ``distance``,
        nearest first) and its values.
    """
    values: list[Any] = [list(query), max_distance, limit]
    nearest_ = "SELECT e.memory_seq, e.vector, e.vector <=> $1 AS distance FROM embeddings AS e"
    branches = []
    for part, seqs in small:
        where = _bind(part, values, "e.")
        values.append(list(seqs))
        branches.append(
            f"({nearest_} WHERE {where} AND e.memory_seq = ANY(${len(values)}::text[]::bigint[]) "
            "AND e.vector <=> $1 <= $2 ORDER BY distance, e.memory_seq LIMIT $3)"
        )
    branches += [
        f"({nearest_} WHERE {_bind(part, values, 'e.')} AND e.vector <=> $1 <= $2 "
        "ORDER BY e.vector <=> $1, e.memory_seq LIMIT $3)"
        for part in large
    ]
    return (
        f"WITH hits AS ({' UNION ALL '.join(branches)}) "
        f"SELECT {columns}, h.vector, h.distance FROM hits AS h "
        "JOIN memories AS m ON m.seq = h.memory_seq "
        "ORDER BY h.distance, h.memory_seq LIMIT $3",
        values,
    )
