"""``carrier worker``: the workers plugin's command (imported when it runs)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["WorkerCommand"]


class WorkerCommand(carrier.Command):
    """``carrier worker [CHARACTER ...]``: handle queued messages until SIGTERM or Ctrl-C."""

    help = "Handle queued messages (start any number, on any machine)."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments."""
        self.add_characters_argument(parser)
        parser.add_argument(
            "--concurrency",
            type=int,
            help="Messages handled at once (default: CARRIER_WORKERS_CONCURRENCY).",
        )

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        """Run the worker; SIGTERM and SIGINT finish the messages in hand, then exit."""
        from carrier_plugin_workers.worker import run_worker

        settings = host.settings.get("workers")
        if args.concurrency is not None:
            if args.concurrency < 1:
                raise carrier.ConfigurationError("--concurrency must be at least 1.")
            settings = settings.model_copy(update={"concurrency": args.concurrency})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await run_worker(
            host,
            args.characters,
            settings=settings,
            stop=stop,
            on_ready=lambda line: print(line, file=sys.stderr, flush=True),
        )
