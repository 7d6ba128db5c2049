"""Tool calls through the loop against a real stdio MCP server, against the SDK's own.

    python benchmarks/mcp_calls.py --json
    python benchmarks/mcp_calls.py --calls 200 --json

(Not ``benchmarks/mcp.py``: a script named like a package it imports shadows it.)

Starts the SDK-written test server (``carrier_plugin_mcp.testing``) twice over stdio: once
as the agent's MCP server (``CARRIER_MCP_CONFIG``), once for a bare SDK ``Client``. Then,
CALLS times, interleaved so both see the same machine: one bare ``call_tool("add")``, and
one message through ``AgentRuntime.handle`` on a SQLite store (WAL, temp dir) whose model
(instant, scripted) calls ``test__add`` at step 0 and answers at step 1, after the result
reached it. Plugins installed in the environment load as usual. The last line is one JSON
object: calls, p50_ms and p99_ms (per tool-calling message through the loop, until
``handle`` returns), sdk_p50_ms and sdk_p99_ms (the bare call), overhead_ms
(p50_ms - sdk_p50_ms; target ≤ 2.0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(calls: int, rooms: int) -> dict[str, object]:
    from mcp import Client, StdioServerParameters

    from carrier import AgentRuntime, IncomingMessage, PluginHost
    from carrier.character import Character
    from carrier.settings import CarrierSettings
    from carrier.testing.fakes import FunctionModel
    from carrier.types import ActionCall, ModelRequest, ModelResponse

    def adding(request: ModelRequest) -> ModelResponse:
        if request.response_schema is not None:  # evaluators
            return ModelResponse(text='{"facts": [], "completed": [], "summary": "Sums."}')
        if request.metadata.get("step") == 0 and request.actions:
            call = ActionCall(name="test__add", arguments={"a": 2, "b": 40})
            return ModelResponse(text="Adding.", action_calls=[call])
        return ModelResponse(text="It is 42.")

    server = {"command": sys.executable, "args": ["-m", "carrier_plugin_mcp.testing"]}
    os.environ["CARRIER_MCP_CONFIG"] = json.dumps({"mcpServers": {"test": server}})
    with tempfile.TemporaryDirectory() as tmp:
        settings = CarrierSettings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}")
        host = PluginHost(settings=settings)
        model = FunctionModel(adding)
        character = Character(name="Bench", bio=["Adds numbers."])
        params = StdioServerParameters(command=sys.executable, args=server["args"])
        loop_ms: list[float] = []
        sdk_ms: list[float] = []
        async with (
            AgentRuntime(
                character, host=host, models={"large": model, "small": model, "embedding": None}
            ) as runtime,
            Client(params) as bare,
        ):
            for warm in range(20):
                await bare.call_tool("add", {"a": 2, "b": 40})
                await runtime.handle(
                    IncomingMessage(text=f"warm {warm}", user_id="u0", room_id="warm")
                )
            gc.collect()
            gc.freeze()
            for index in range(calls):
                started = time.perf_counter()
                result = await bare.call_tool("add", {"a": 2, "b": 40})
                sdk_ms.append((time.perf_counter() - started) * 1000)
                assert not result.is_error
                room = f"room-{index % rooms}"
                incoming = IncomingMessage(
                    text=f"what is 2 + 40? ({index})", user_id=f"user-{index % rooms}", room_id=room
                )
                started = time.perf_counter()
                reply = await runtime.handle(incoming)
                loop_ms.append((time.perf_counter() - started) * 1000)
                assert reply.action_results[0].text == "42", reply.action_results
    p50, sdk_p50 = statistics.median(loop_ms), statistics.median(sdk_ms)
    return {
        "calls": calls,
        "rooms": rooms,
        "p50_ms": round(p50, 4),
        "p99_ms": round(percentile(loop_ms, 0.99), 4),
        "sdk_p50_ms": round(sdk_p50, 4),
        "sdk_p99_ms": round(percentile(sdk_ms, 0.99), 4),
        "overhead_ms": round(p50 - sdk_p50, 4),
        "target_met": p50 <= sdk_p50 + 2.0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()
    figures = asyncio.run(main(args.calls, args.rooms))
    print(json.dumps(figures) if args.json else figures)
