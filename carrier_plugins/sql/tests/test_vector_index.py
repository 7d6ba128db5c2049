"""The numpy index's searches by entity (served from per-entity blocks) find exactly
what a brute-force scan finds, as rows are added and removed and blocks are evicted."""

from __future__ import annotations

import numpy as np
import pytest
from carrier_plugin_sql import vector_blocks, vectors
from carrier_plugin_sql.vectors import VectorIndex

from carrier.types import SearchScope

DIMENSION = 16
USERS = [f"user-{n}" for n in range(6)]


def _rows(rng: np.random.Generator, first_seq: int, count: int) -> list[vectors.Row]:
    rows = []
    for seq in range(first_seq, first_seq + count):
        user = USERS[int(rng.integers(len(USERS)))]
        room = f"room-{int(rng.integers(3))}"
        scope = "direct" if room == "room-0" else "room"
        vector = rng.standard_normal(DIMENSION).astype(np.float32)
        rows.append((seq, "agent", room, "message", user, scope, vector.tobytes()))
    return rows


def _expected(
    rows: dict[int, vectors.Row],
    query: np.ndarray,
    *,
    user: str,
    limit: int,
    scope: SearchScope | None,
) -> list[int]:
    """The best ``limit`` seqs of ``user``'s rows that ``scope`` allows, by brute force."""
    scored = []
    for seq, (_, _, room, _, entity, kind, blob) in rows.items():
        if entity != user:
            continue
        if scope is not None and not (
            room == scope.room_id
            or (scope.direct and kind == "direct" and entity == scope.entity_id)
        ):
            continue
        vector = np.frombuffer(blob, dtype=np.float32)
        scored.append((float(vector @ query / np.linalg.norm(vector)), seq))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [seq for _, seq in scored[:limit]]


def _users_best(
    index: VectorIndex, query: np.ndarray, *, user: str, limit: int, scope: SearchScope | None
) -> list[int]:
    """The seqs the index finds for ``user``'s messages (as the relevant-memories
    provider searches), best first."""
    found = index.search(
        query,
        agent_id="agent",
        room_id=None,
        type="message",
        limit=limit,
        threshold=-1.0,
        entity_id=user,
        scope=scope,
    )
    return [seq for seq, _ in found]


@pytest.mark.parametrize("block_bytes", [64 << 20, 40 * 4 * DIMENSION])
def test_searches_by_entity_match_a_brute_force_scan(
    block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second case's budget holds about 40 rows, so blocks are evicted and rebuilt."""
    monkeypatch.setattr(vector_blocks, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(7)
    index = VectorIndex(DIMENSION, capacity=8)  # grows while blocks exist
    held: dict[int, vectors.Row] = {}
    seq = 1
    for round_ in range(30):
        batch = _rows(rng, seq, int(rng.integers(1, 12)))
        seq += len(batch)
        index.add_rows(batch)
        held.update({row[0]: row for row in batch})
        if round_ % 7 == 6:  # forget a few
            for gone in list(held)[::5]:
                index.remove(gone)
                del held[gone]
        for user in USERS:
            query = vectors.unit(rng.standard_normal(DIMENSION))
            for scope in (
                None,
                SearchScope(room_id="room-1", entity_id=user, direct=False),
                SearchScope(room_id="room-0", entity_id=user, direct=True),
            ):
                assert _users_best(index, query, user=user, limit=5, scope=scope) == _expected(
                    held, query, user=user, limit=5, scope=scope
                )


def test_an_unknown_entity_or_another_agent_finds_nothing() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(DIMENSION)
    index.add_rows(_rows(rng, 1, 20))
    query = vectors.unit(rng.standard_normal(DIMENSION))
    common = {"room_id": None, "type": None, "limit": 5, "threshold": -1.0}
    assert index.search(query, agent_id="agent", entity_id="nobody", **common) == []  # type: ignore[arg-type]
    assert index.search(query, agent_id="other", entity_id=USERS[0], **common) == []  # type: ignore[arg-type]


def test_one_users_repeated_search_sees_each_add_and_remove() -> None:
    """The same search again and again (as a sender's messages make it) reuses its
    filter for the rows it saw and must still see every row added or removed since."""
    rng = np.random.default_rng(3)
    index = VectorIndex(DIMENSION, capacity=4)
    held: dict[int, vectors.Row] = {}
    scope = SearchScope(room_id="room-0", entity_id=USERS[0], direct=True)
    for seq in range(1, 120):
        row = _rows(rng, seq, 1)[0]
        row = (seq, "agent", row[2], "message", USERS[seq % 2], row[5], row[6])
        index.add_rows([row])
        held[seq] = row
        if seq % 9 == 0:
            gone = max(s for s, r in held.items() if r[4] == USERS[0])
            index.remove(gone)
            del held[gone]
        query = vectors.unit(rng.standard_normal(DIMENSION))
        assert _users_best(index, query, user=USERS[0], limit=3, scope=scope) == _expected(
            held, query, user=USERS[0], limit=3, scope=scope
        )


def test_a_query_is_taken_as_a_list_a_tuple_or_an_array_alike() -> None:
    rng = np.random.default_rng(5)
    index = VectorIndex(DIMENSION)
    index.add_rows(_rows(rng, 1, 30))
    raw = rng.standard_normal(DIMENSION)
    common = {"agent_id": "agent", "room_id": None, "type": None, "limit": 4, "threshold": -1.0}
    found = [
        index.search(index.unit_query(form), **common)  # type: ignore[arg-type]
        for form in (raw.tolist(), tuple(raw.tolist()), raw, raw.tolist())
    ]
    assert len(found[0]) == 4
    assert all(f == found[0] for f in found)
