"""A worker process whose model takes ``SLOW_MODEL_LATENCY_S`` per answer.

Run as a script by the process tests and by ``benchmarks/workers.py``: a host
with the installed plugins plus a ``slow`` model (``FakeModel`` with latency),
then :func:`carrier_plugin_workers.worker.run_worker` until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from carrier_plugin_workers.worker import run_worker

import carrier
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.registry import Registry
from carrier.testing import FakeModel


class SlowModels:
    @carrier.hookimpl
    def carrier_register_models(self, models: Registry[Model]) -> None:
        latency = float(os.environ.get("SLOW_MODEL_LATENCY_S", "0.05"))
        models.add("slow", lambda **_: FakeModel(name="slow", latency_s=latency))


async def main() -> int:
    host = PluginHost()
    host.register(SlowModels(), name="slow-models")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await run_worker(
        host, stop=stop, on_ready=lambda line: print(line, file=sys.stderr, flush=True)
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
