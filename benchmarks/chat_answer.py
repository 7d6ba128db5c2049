"""Time to the first answer of ``carrier chat`` on a warm machine (target ≤ 3 s).

    python benchmarks/chat_answer.py --json

Runs ``echo "What is your name?" | carrier chat`` (the default character on the local
model and a SQLite file in a temp dir) once to warm the OS file cache, then RUNS times,
and prints the median and worst of ``first_output_s`` (process start to the first byte
of the answer) and ``answer_s`` (process start to exit: the whole answer streamed,
stored, and the process gone).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Only the JSON line.")
    args = parser.parse_args()
    carrier = Path(sys.executable).parent / "carrier"
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "chat.db"
        timed_chat(carrier, database)  # warm-up: file cache, database created
        runs = [timed_chat(carrier, database) for _ in range(args.runs)]
    firsts, answers = [r[0] for r in runs], [r[1] for r in runs]
    result = {
        "runs": args.runs,
        "first_output_s": round(statistics.median(firsts), 3),
        "first_output_worst_s": round(max(firsts), 3),
        "answer_s": round(statistics.median(answers), 3),
        "answer_worst_s": round(max(answers), 3),
        "target_met": max(answers) <= 3.0,
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:>22}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
