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
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.protocols import Action
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FakeModel, FunctionModel
from carrier.types import ActionCall, ActionResult, Content, Memory, ModelRequest, ModelResponse


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
            _env_file=None,
        )
    )
    if tracing is not None:
        host.register(tracing.observer, name="otel-benchmark")
    model: FakeModel | FunctionModel
    if actions:
        host.register(NotePlugin(), name="note")
        model = FunctionModel(noting)
    else:
        model = FakeModel(default_text="Thanks, noted.", embedding_dimension=384 if embed else None)
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
        total = time.perf_counter() - started
    finally:
        for runtime in runtimes:
            await runtime.stop()

    def around(turn: int) -> float:
        window = [v for lat in per_room.values() for v in lat[max(0, turn - 5) : turn + 6]]
        return statistics.fmean(window)

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
        "turn10_ms": round(around(10), 4),
        "turn200_ms": round(around(200), 4),
    }
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
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
    parser.add_argument("--json", action="store_true", help="Only the JSON line.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = [
            "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / name}"
            for name in ("bench.db", "noprov.db")
        ]
        result = asyncio.run(run(args, urls))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>12}: {value}", file=sys.stderr)
        ratio = result["turn200_ms"] / result["turn10_ms"]  # type: ignore[operator]
        print(f"turn200/turn10: {ratio:.3f}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
