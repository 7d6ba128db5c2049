"""Carrier's OpenAI backend against the bare ``openai`` SDK, same server, same run.

    python benchmarks/model_overhead.py --json
    python benchmarks/model_overhead.py --requests 2000 --json

A fake OpenAI-compatible server runs in a child process on 127.0.0.1 (stdlib asyncio,
answering every ``POST /v1/chat/completions`` with the same documented chat completion,
keep-alive) so that the figures measure the client side only: the model answers
instantly and identically to both. Then, in one event loop, REQUESTS short requests go
through Carrier (``ModelRequest`` → ``OpenAIModel.generate`` → ``ModelResponse``) and
REQUESTS through ``AsyncOpenAI.chat.completions.create`` with the same options,
interleaved one by one after a warm-up, each side on its own client and connection.
The last line is one JSON object: requests, server, carrier_p50_ms, sdk_p50_ms,
carrier_p99_ms, sdk_p99_ms, overhead_ratio (carrier_p50_ms / sdk_p50_ms; target ≤ 1.05).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time

from carrier import PluginHost
from carrier.settings import CarrierSettings
from carrier.types import ChatMessage, ModelRequest

SERVER = r"""
import asyncio, json, sys
BODY = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4.1-mini-2025-04-14",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Hello! How can I help?",
                             "refusal": None}}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 7, "total_tokens": 26},
}).encode()
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(BODY)).encode() + b"\r\n\r\n")

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            writer.write(HEAD + BODY)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

SYSTEM = "You are Nova, a concise assistant."
QUESTION = "Say hello."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(base_url: str, requests: int, warmup: int) -> dict[str, float]:
    import carrier_plugin_openai.plugin
    import openai

    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None))
    host.register(carrier_plugin_openai.plugin, name="openai")
    model = host.models.create(
        "openai", base_url=base_url, api_key="sk-bench", model="gpt-4.1-mini", timeout_s=30
    )
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", timeout=30, max_retries=0)

    async def carrier_call() -> str:
        request = ModelRequest(
            system=SYSTEM,
            messages=[ChatMessage(role="user", content=QUESTION)],
            max_tokens=16,
        )
        return (await model.generate(request)).text

    async def sdk_call() -> str:
        completion = await sdk.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
            max_tokens=16,
        )
        return completion.choices[0].message.content or ""

    timings: dict[str, list[float]] = {"carrier": [], "sdk": []}
    calls = {"carrier": carrier_call, "sdk": sdk_call}
    try:
        for _ in range(warmup):
            for call in calls.values():
                await call()
        gc.collect()
        gc.disable()
        for index in range(requests):
            order = ("carrier", "sdk") if index % 2 == 0 else ("sdk", "carrier")
            for side in order:
                started = time.perf_counter()
                text = await calls[side]()
                timings[side].append((time.perf_counter() - started) * 1000)
                assert text == "Hello! How can I help?"
    finally:
        gc.enable()
        await model.aclose()
        await sdk.close()
    carrier_p50 = statistics.median(timings["carrier"])
    sdk_p50 = statistics.median(timings["sdk"])
    return {
        "carrier_p50_ms": round(carrier_p50, 4),
        "sdk_p50_ms": round(sdk_p50, 4),
        "carrier_p99_ms": round(percentile(timings["carrier"], 0.99), 4),
        "sdk_p99_ms": round(percentile(timings["sdk"], 0.99), 4),
        "overhead_ratio": round(carrier_p50 / sdk_p50, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        result = asyncio.run(run(f"http://127.0.0.1:{port}/v1", args.requests, args.warmup))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
    figures = {
        "requests": args.requests,
        "server": "fake OpenAI-compatible server (asyncio, child process, 127.0.0.1)",
        **result,
    }
    print(
        f"{args.requests} requests each: Carrier p50 {result['carrier_p50_ms']:.3f} ms, "
        f"bare SDK p50 {result['sdk_p50_ms']:.3f} ms, ratio {result['overhead_ratio']:.3f}"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
