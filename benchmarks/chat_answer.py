"""Time to the first answer of ``carrier chat``: a fresh process, and turn after turn in
one running runtime and room (the cache warm, as in a chat session).

    python benchmarks/chat_answer.py --json [--turns 101] [--runs 5] [--sessions 3]

Cold: runs ``echo "What is your name?" | carrier chat`` (the default character on the
local model and a SQLite file in a temp dir) once to warm the OS file cache, then RUNS
times: the median and worst of ``first_output_s`` (= ``cold_start_s``: process start to
the first byte of the answer, the model's load included) and ``answer_s`` (to exit).
Warm: one runtime (every workspace plugin, bootstrap's providers on) reports its
models warm (``AgentRuntime.warmed``: weights loaded, the persona in llama.cpp's prompt
cache; ``warm_up_s`` from start), then answers TURNS messages from Ada in one room,
streamed, each as long as the others (so only the history grows). After each answer it
waits for ``AgentRuntime.warmed`` again: the room's next prefix is prefilled in the
background (``carrier.lookahead``) while a chat's user reads the answer and types
(``prefill_wait_ms``: how long that took, median and worst). It prints
``first_byte_0_s`` (the first turn), ``first_byte_50_s`` and ``first_byte_100_s`` (the
turns after 50 and 100 turns), ``first_byte_91_100_median_s`` and ``prefix_reuse_pct``,
the share of the prompt tokens llama.cpp took from its cache over the turns after the
first. Then Bob's first message in a new room, right after turn 100:
``first_byte_0_late_s`` (a first turn with llama.cpp's slot holding another room: it
saves that room's cache to memory first), reading as many new tokens as turn 0
(``new_tokens_0``, ``new_tokens_0_late``). Targets: ``ratio_100_0`` (turn 100 over turn
0 of the same session) ≤ 1.5, turn 0 ≤ 2.5 s. SESSIONS warm sessions run one after
another, each a fresh runtime and database: every figure printed is the median over
them (``sessions`` lists each one's own, ``ratio_by_session`` its ``ratio_100_0``).
llama.cpp's two threads run here in fast and slow spells of seconds to a minute (in a
slow one a prompt read after ~900 tokens of context takes ~1.6× as long, one after 185
~1.2×; ``docs/benchmarks.md``, fourteenth session): the median of sessions keeps one
spell from deciding the ratio.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carrier import AgentRuntime, IncomingMessage

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


def message_text(turn: int) -> str:
    """The benchmark's message at ``turn``: the same length at every turn (each digit is
    a token), so that what grows from turn to turn is the history alone."""
    return f"Message {turn:03d}: tell me one short thing about the number {turn:03d}."


#: A new room's first message, read right after a long room's turns (see ``warm_session``).
LATE_FIRST_MESSAGE = "Hello, message 000: tell me one short thing about the number 000."


async def timed_turn(runtime: AgentRuntime, message: IncomingMessage) -> float:
    """Seconds from handing ``message`` to the runtime to its answer's first streamed
    byte; returns once the evaluators are done, as a chat's next turn would."""
    started = time.perf_counter()
    first: list[float] = []

    async def on_text(delta: str) -> None:
        if not first:
            first.append(time.perf_counter())

    reply = await runtime.handle(message, on_text=on_text)
    await reply.evaluated()
    return (first[0] if first else time.perf_counter()) - started


async def warm_session(database: Path, turns: int) -> dict[str, object]:
    """``turns`` messages in one room of one running runtime, then a new room's first
    message: first bytes and reuse."""
    from carrier import AgentRuntime, IncomingMessage, PluginHost
    from carrier.runtime import DEFAULT_CHARACTER
    from carrier.testing import EventRecorder
    from carrier.types import EventType

    os.environ["CARRIER_DATABASE_URL"] = f"sqlite:///{database}"
    host = PluginHost()
    events = EventRecorder()
    host.register(events, name="bench-events")

    def used_in(room: str) -> list[dict[str, object]]:
        return [
            e.data
            for e in events.of(EventType.MODEL_USED)
            if e.data.get("model_class") == "large" and e.room_id == room
        ]

    def new_tokens(room: str) -> tuple[int, int]:
        """The last request's prompt tokens in ``room``: those llama.cpp had to read (not
        from its cache), and all."""
        used = used_in(room)
        total = int(str(used[-1].get("input_tokens") or 0)) if used else 0
        cached = int(str(used[-1].get("cache_read_input_tokens") or 0)) if used else 0
        return total - cached, total

    def report(label: str, seconds: float, room: str) -> None:
        new, total = new_tokens(room)
        read = f", {new} new tokens of {total}"
        print(f"{label}: first byte {seconds:.3f} s{read}", file=sys.stderr, flush=True)

    firsts: list[float] = []
    prefill_waits: list[float] = []
    new_0 = 0
    started = time.perf_counter()
    async with AgentRuntime(DEFAULT_CHARACTER, host=host) as runtime:
        await runtime.warmed()  # as a chat session is by the time its user has typed
        warm_up_s = time.perf_counter() - started
        for turn in range(turns):
            message = IncomingMessage(text=message_text(turn), user_id="ada", room_id="bench")
            firsts.append(await timed_turn(runtime, message))
            report(f"turn {turn}", firsts[-1], "bench")
            waited = time.perf_counter()
            await runtime.warmed()  # the next prefix's prefill: while the user reads
            prefill_waits.append(time.perf_counter() - waited)
            if turn == 0:
                new_0 = new_tokens("bench")[0]
        # Another user's first message in a new room, right after the last turn: the same
        # work as turn 0, measured within a second of turn 100 (see the module's text).
        # llama.cpp's slot still holds the room's turns, whose template this message's
        # first tokens match: it is two tokens longer, so it reads as many new tokens.
        message = IncomingMessage(text=LATE_FIRST_MESSAGE, user_id="bob", room_id="bench-new")
        first_late = await timed_turn(runtime, message)
        report("a new room's first turn", first_late, "bench-new")
        new_late = new_tokens("bench-new")[0]
    later = used_in("bench")[1:]
    prompt = sum(int(str(d.get("input_tokens") or 0)) for d in later)
    cached = sum(int(str(d.get("cache_read_input_tokens") or 0)) for d in later)
    used = used_in("bench")
    result: dict[str, object] = {
        "turns": turns,
        "model": str(used[0].get("model")) if used else None,
        "warm_up_s": round(warm_up_s, 3),
        "first_byte_0_s": round(firsts[0], 3),
        "first_byte_0_late_s": round(first_late, 3),
        "new_tokens_0": new_0,
        "new_tokens_0_late": new_late,
        "prefix_reuse_pct": round(100 * cached / prompt, 1) if prompt else None,
        "prompt_tokens_last": used[-1].get("input_tokens") if used else None,
    }
    for at in (10, 50, 100):
        if turns > at:
            result[f"first_byte_{at}_s"] = round(firsts[at], 3)
    if turns > 100:  # one turn may carry retrieved sections or not: the ten around it
        result["first_byte_91_100_median_s"] = round(statistics.median(firsts[91:101]), 3)
        result["ratio_100_0"] = round(firsts[100] / firsts[0], 2)
    if prefill_waits:
        result["prefill_wait_ms"] = round(1000 * statistics.median(prefill_waits), 1)
        result["prefill_wait_worst_ms"] = round(1000 * max(prefill_waits), 1)
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
    result["ratio_by_session"] = [s["ratio_100_0"] for s in sessions if "ratio_100_0" in s]
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
    first0, ratio = result.get("first_byte_0_s"), result.get("ratio_100_0")
    if isinstance(first0, float) and isinstance(ratio, float):
        result["target_met"] = ratio <= 1.5 and first0 <= 2.5
    if not args.json:
        for key, value in result.items():
            print(f"{key:>22}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
