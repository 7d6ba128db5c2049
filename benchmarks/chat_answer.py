"""Time to the first answer of ``carrier chat``: a fresh process, and turn after turn in
one running runtime and room (the cache warm, as in a chat session).

    python benchmarks/chat_answer.py --json [--turns 101] [--runs 5] [--sessions 3]

Cold: runs ``echo "What is your name?" | carrier chat`` (the default character on the
local model and a SQLite file in a temp dir) once to warm the OS file cache, then RUNS
times: the median and worst of ``first_output_s`` (= ``cold_start_s``: process start to
the first byte of the answer, the model's load included) and ``answer_s`` (to exit).
Warm: one runtime (every workspace plugin, bootstrap's providers on) reports its
models warm (``AgentRuntime.warmed``: weights loaded, the persona in llama.cpp's prompt
cache; ``warm_up_s`` from start), then answers TURNS messages in one room,
streamed: ``first_byte_0_s`` (the first turn), ``first_byte_50_s`` and
``first_byte_100_s`` (the turns after 50 and 100 turns), ``first_byte_91_100_median_s``
(whether one turn carries retrieved sections is chance), and ``prefix_reuse_pct``, the
share of the prompt tokens llama.cpp took from its cache over the turns after the
first. Targets: ``first_byte_100_s`` ≤ 1.5 × ``first_byte_0_s``, ``first_byte_0_s`` ≤ 2.5.
One turn's first byte varies by ±30% on a small shared machine, so SESSIONS warm sessions
run one after another, each a fresh runtime and database: every figure printed is the
median over them (``sessions`` lists each one's own, ``ratio_by_session`` its
``first_byte_100_s`` ÷ ``first_byte_0_s``), and the target compares the medians.
Standard error gets each turn's first byte and how many of its prompt's tokens llama.cpp
read (those not from its cache): what a turn costs grows with both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "What is your name?\n"


def timed_chat(carrier: Path, database: Path) -> tuple[float, float]:
    env = {**os.environ, "CARRIER_DATABASE_URL": f"sqlite:///{database}"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(carrier), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(QUESTION.encode())
    process.stdin.close()
    process.stdout.read(1)
    first = time.perf_counter() - started
    process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"carrier chat failed with exit code {process.returncode}")
    return first, time.perf_counter() - started


async def warm_session(database: Path, turns: int) -> dict[str, object]:
    """``turns`` messages in one room of one running runtime: first bytes and reuse."""
    from carrier import AgentRuntime, IncomingMessage, PluginHost
    from carrier.runtime import DEFAULT_CHARACTER
    from carrier.testing import EventRecorder
    from carrier.types import EventType

    os.environ["CARRIER_DATABASE_URL"] = f"sqlite:///{database}"
    host = PluginHost()
    events = EventRecorder()
    host.register(events, name="bench-events")
    firsts: list[float] = []
    started = time.perf_counter()
    async with AgentRuntime(DEFAULT_CHARACTER, host=host) as runtime:
        await runtime.warmed()  # as a chat session is by the time its user has typed
        warm_up_s = time.perf_counter() - started
        for turn in range(turns):
            started = time.perf_counter()
            first: list[float] = []

            async def on_text(delta: str, first: list[float] = first) -> None:
                if not first:
                    first.append(time.perf_counter())

            text = f"Message {turn}: tell me one short thing about the number {turn}."
            reply = await runtime.handle(
                IncomingMessage(text=text, user_id="ada", room_id="bench"), on_text=on_text
            )
            await reply.evaluated()
            firsts.append((first[0] if first else time.perf_counter()) - started)
            used = [
                e.data
                for e in events.of(EventType.MODEL_USED)
                if e.data.get("model_class") == "large" and e.room_id == "bench"
            ]
            read = ""
            if used:  # what llama.cpp had to read: the tokens not from its cache
                total = int(used[-1].get("input_tokens") or 0)
                new = total - int(used[-1].get("cache_read_input_tokens") or 0)
                read = f", {new} new tokens of {total}"
            print(f"turn {turn}: first byte {firsts[-1]:.3f} s{read}", file=sys.stderr, flush=True)
    used = [
        e.data
        for e in events.of(EventType.MODEL_USED)
        if e.data.get("model_class") == "large" and e.room_id == "bench"
    ]
    later = used[1:]
    prompt = sum(d.get("input_tokens") or 0 for d in later)
    cached = sum(d.get("cache_read_input_tokens") or 0 for d in later)
    result: dict[str, object] = {
        "turns": turns,
        "model": str(used[0].get("model")) if used else None,
        "warm_up_s": round(warm_up_s, 3),
        "first_byte_0_s": round(firsts[0], 3),
        "prefix_reuse_pct": round(100 * cached / prompt, 1) if prompt else None,
        "prompt_tokens_last": used[-1].get("input_tokens") if used else None,
    }
    for at in (10, 50, 100):
        if turns > at:
            result[f"first_byte_{at}_s"] = round(firsts[at], 3)
    if turns > 100:  # one turn may carry retrieved sections or not: the ten around it
        result["first_byte_91_100_median_s"] = round(statistics.median(firsts[91:101]), 3)
    return result


def medians(sessions: list[dict[str, object]]) -> dict[str, object]:
    """Each figure that differs between the sessions as its median over them, and
    every session's own figures and ratio."""
    result: dict[str, object] = {}
    for key, value in sessions[0].items():
        numbers = [float(v) for s in sessions if isinstance(v := s.get(key), int | float)]
        if len(numbers) == len(sessions) and len(set(numbers)) > 1:
            result[key] = round(statistics.median(numbers), 3)
        else:
            result[key] = value
    result["sessions"] = sessions
    result["ratio_by_session"] = [
        round(last / first, 2)
        for s in sessions
        if isinstance(last := s.get("first_byte_100_s"), float)
        and isinstance(first := s.get("first_byte_0_s"), float)
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Cold runs (0: none).")
    parser.add_argument("--turns", type=int, default=101, help="Warm turns (0: none).")
    parser.add_argument(
        "--sessions", type=int, default=3, help="Warm sessions; figures are their medians."
    )
    parser.add_argument("--json", action="store_true", help="Only the JSON line.")
    args = parser.parse_args()
    carrier = Path(sys.executable).parent / "carrier"
    result: dict[str, object] = {"runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        if args.runs:
            database = Path(tmp) / "chat.db"
            timed_chat(carrier, database)  # warm-up: file cache, database created
            runs = [timed_chat(carrier, database) for _ in range(args.runs)]
            firsts, answers = [r[0] for r in runs], [r[1] for r in runs]
            result |= {
                "cold_start_s": round(statistics.median(firsts), 3),
                "first_output_s": round(statistics.median(firsts), 3),
                "first_output_worst_s": round(max(firsts), 3),
                "answer_s": round(statistics.median(answers), 3),
                "answer_worst_s": round(max(answers), 3),
            }
        if args.turns and args.sessions > 0:
            sessions = [
                asyncio.run(warm_session(Path(tmp) / f"warm{n}.db", args.turns))
                for n in range(args.sessions)
            ]
            result |= medians(sessions)
    first0, last = result.get("first_byte_0_s"), result.get("first_byte_100_s")
    if isinstance(first0, float) and isinstance(last, float):
        result["target_met"] = last <= 1.5 * first0 and first0 <= 2.5
    if not args.json:
        for key, value in result.items():
            print(f"{key:>22}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
