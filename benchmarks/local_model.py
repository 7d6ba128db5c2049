"""Benchmark the ``local`` model: Carrier's wrapper against the raw llama.cpp engine.

Run: ``python benchmarks/local_model.py --json``. The last line is one JSON object:

- ``load_s``: loading the GGUF into llama.cpp (through the model, first use);
- ``prompt_tok_s``: prompt tokens per second, a ~400-token prompt, no cache;
- ``gen_tok_s``: generated tokens per second through ``LocalModel.generate``;
- ``raw_gen_tok_s``: the same request (prompt, max tokens, seed) sent straight to
  the engine's ``handle_chat_completions`` in the same process;
- ``embed_per_s``: sentences embedded per second, 1,000 sentences in one call.

Targets: ``gen_tok_s >= 0.95 * raw_gen_tok_s`` and ``embed_per_s >= 800``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings

from carrier.types import ChatMessage, ModelRequest

SYSTEM = "You are Nova, a friendly AI companion who runs on the user's computer."
QUESTION = "Tell me a long story about a lighthouse keeper and a storm."
LONG = " ".join(f"Fact {i}: lighthouse {i} was built in {1800 + i}." for i in range(40))


async def _timed_generate(model: LocalModel, request: ModelRequest) -> tuple[float, int]:
    start = time.perf_counter()
    response = await model.generate(request)
    return time.perf_counter() - start, response.usage.output_tokens


def _timed_raw(model: LocalModel, body: dict[str, Any]) -> tuple[float, int]:
    server = model.chat._server  # the engine Carrier itself calls
    start = time.perf_counter()
    result = server.handle_chat_completions(body)
    return time.perf_counter() - start, int(result["usage"]["completion_tokens"])


async def run(max_tokens: int, rounds: int) -> dict[str, Any]:
    model = build_model(LocalSettings(_env_file=None))
    assert isinstance(model, LocalModel)

    start = time.perf_counter()
    await asyncio.to_thread(model.chat.load)
    load_s = time.perf_counter() - start

    # Prompt processing: a long prompt, one output token, nothing cached.
    long_request = ModelRequest(
        system=SYSTEM,
        messages=[ChatMessage(role="user", content=LONG)],
        max_tokens=1,
        seed=1,
    )
    prompt, _mode = model.prepare(long_request)
    body = prompt.payload() | {"cache_prompt": False}
    speeds = []
    for _ in range(rounds):
        result = model.chat._server.handle_chat_completions(body)
        timings = result["timings"]
        speeds.append(timings["prompt_n"] / (timings["prompt_ms"] / 1000))
    prompt_tok_s = statistics.median(speeds)

    # Generation: the same request (prompt, max tokens, seed) both ways, alternating;
    # speed is the tokens each call reports over its wall time.
    request = ModelRequest(
        system=SYSTEM,
        messages=[ChatMessage(role="user", content=QUESTION)],
        max_tokens=max_tokens,
        seed=42,
    )
    prompt, _mode = model.prepare(request)
    raw_body = prompt.payload()
    await model.generate(request)  # warm the prompt cache for both
    carrier_speeds, raw_speeds = [], []
    for _ in range(rounds):
        seconds, tokens = await _timed_generate(model, request)
        carrier_speeds.append(tokens / seconds)
        seconds, tokens = await asyncio.to_thread(_timed_raw, model, raw_body)
        raw_speeds.append(tokens / seconds)
    gen_tok_s = statistics.median(carrier_speeds)
    raw_gen_tok_s = statistics.median(raw_speeds)

    sentences = [
        f"Sentence {i}: the {['quick', 'lazy', 'red', 'old'][i % 4]} fox number {i} "
        f"jumps over {i % 7} sleeping dogs near the river bank."
        for i in range(1000)
    ]
    await model.embed(sentences[:8])  # load the session outside the timing
    start = time.perf_counter()
    vectors = await model.embed(sentences)
    embed_per_s = len(vectors) / (time.perf_counter() - start)

    await model.aclose()
    return {
        "model": model.name,
        "max_tokens": max_tokens,
        "rounds": rounds,
        "load_s": round(load_s, 3),
        "prompt_tok_s": round(prompt_tok_s, 1),
        "gen_tok_s": round(gen_tok_s, 1),
        "raw_gen_tok_s": round(raw_gen_tok_s, 1),
        "gen_ratio": round(gen_tok_s / raw_gen_tok_s, 3),
        "embed_per_s": round(embed_per_s, 1),
        "targets_met": gen_tok_s >= 0.95 * raw_gen_tok_s and embed_per_s >= 800,
    }


def main() -> None:
    """Parse the command line, run the benchmark, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only one JSON line")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(run(args.max_tokens, args.rounds))
    if not args.json:
        for key, value in results.items():
            print(f"{key:>14}: {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
