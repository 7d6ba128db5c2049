"""Top-10 semantic search latency and recall of ``SqlStore`` at 100k and 1M memories.

Run: ``python benchmarks/retrieval.py --json [--sizes 100000,1000000]``

Stores ``n`` random-but-clustered 384-dim embeddings (bulk-loaded into the store's
own tables), then times ``store.search_memories(limit=10)`` end to end (vector
search + reading the 10 memories) and measures recall@10 against an exact numpy
search over the original float64-normalized vectors. The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlean
from carrier_plugin_sql import ops, vectors
from carrier_plugin_sql.store import SqlStore

from carrier.types import Content, Memory

DIM = 384
CLUSTERS = 1000
CHUNK = 50_000


def _clustered(rng: np.random.Generator, centroids: np.ndarray, n: int) -> np.ndarray:
    picks = rng.integers(0, len(centroids), n)
    data = centroids[picks] + 0.35 * rng.standard_normal((n, DIM), dtype=np.float32)
    return data.astype(np.float32)


def _load(path: Path, data: np.ndarray) -> None:
    """Bulk-insert memories and their embeddings with the store's own statements."""
    conn = sqlean.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        created = 1_700_000_000.0
        for start in range(0, len(data), CHUNK):
            conn.execute("BEGIN")
            for i in range(start, min(start + CHUNK, len(data))):
                memory = Memory(
                    id=f"m{i}",
                    agent_id="agent",
                    entity_id="user",
                    room_id=f"room{i % 100}",
                    type="fragment",
                    content=Content(text=f"fragment {i}"),
                    created_at=created + i,
                )
                cursor = conn.execute(ops._INSERT_MEMORY, ops.memory_params(memory))
                conn.execute(
                    ops._INSERT_EMBEDDING,
                    (
                        cursor.lastrowid,
                        memory.id,
                        "agent",
                        memory.room_id,
                        "fragment",
                        DIM,
                        vectors.encode(data[i]),
                    ),
                )
            conn.execute("COMMIT")
        conn.execute(
            "INSERT INTO carrier_meta (key, value) VALUES ('embedding_dimension', ?)", (str(DIM),)
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def run(n: int, queries: int, vector_search: str, folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    centroids = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    data = _clustered(rng, centroids, n)
    path = folder / f"retrieval-{n}.db"
    url = f"sqlite:///{path}"
    async with SqlStore(url):
        pass  # creates the schema
    started = time.perf_counter()
    _load(path, data)
    load_s = time.perf_counter() - started
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    probes = _clustered(rng, centroids, queries)
    latencies: list[float] = []
    hits = 0
    async with SqlStore(url, vector_search=vector_search) as store:  # type: ignore[arg-type]
        started = time.perf_counter()
        await store.search_memories(agent_id="agent", embedding=probes[0].tolist(), limit=10)
        first_s = time.perf_counter() - started  # includes reading the index into RAM
        for probe in probes:
            query = probe.tolist()
            started = time.perf_counter()
            found = await store.search_memories(agent_id="agent", embedding=query, limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
            exact = np.argpartition(-(unit @ (probe / np.linalg.norm(probe))), 10)[:10]
            hits += len({f"m{i}" for i in exact} & {s.memory.id for s in found})
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "n": n,
        "vector_search": vector_search,
        "p50_ms": round(quantiles[49], 2),
        "p99_ms": round(quantiles[98], 2),
        "recall_at_10": round(hits / (10 * queries), 4),
        "queries": queries,
        "load_s": round(load_s, 1),
        "first_search_s": round(first_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated n values")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--vector-search", default="numpy", choices=["numpy", "sqlite-vec"])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n in (int(s) for s in args.sizes.split(",")):
            result = asyncio.run(run(n, args.queries, args.vector_search, Path(folder)))
            results.append(result)
            print(
                f"n={result['n']:>9,}  p50={result['p50_ms']:8.2f} ms  "
                f"p99={result['p99_ms']:8.2f} ms  recall@10={result['recall_at_10']:.4f}  "
                f"(load {result['load_s']} s, first search {result['first_search_s']} s)",
                flush=True,
            )
    if args.json:
        print(json.dumps({"benchmark": "retrieval", "dim": DIM, "results": results}))


if __name__ == "__main__":
    main()
