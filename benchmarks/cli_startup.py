"""Wall time of ``carrier --help`` with every installed plugin (target ≤ 0.25 s).

    python benchmarks/cli_startup.py --json

Runs the command RUNS times after one warm-up and prints the median and best, and the
same for a bare ``python -c pass`` as the baseline of interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str], runs: int) -> list[float]:
    subprocess.run(command, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    carrier = str(Path(sys.executable).with_name("carrier"))
    from importlib.metadata import entry_points

    plugins = sorted(ep.name for ep in entry_points(group="carrier"))
    help_times = timed([carrier, "--help"], args.runs)
    bare_times = timed([sys.executable, "-c", "pass"], args.runs)
    result = {
        "plugins": plugins,
        "help_median_s": round(statistics.median(help_times), 4),
        "help_best_s": round(min(help_times), 4),
        "python_median_s": round(statistics.median(bare_times), 4),
        "ratio_to_bare_python": round(
            statistics.median(help_times) / statistics.median(bare_times), 2
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
