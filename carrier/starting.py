"""``carrier start``: every enabled client of the agents in one process, until stopped.

Like ``elizaos start``: the agents are opened on one store (recovering what a crash
left unfinished), each registered client's instances run under the
:class:`~carrier.services.Supervisor`, and SIGINT or SIGTERM stops them gracefully —
the clients stop taking events and finish (or leave, for recovery) the turns in
flight — before the agents and the store close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Collection, Sequence

from carrier.host import PluginHost
from carrier.runtime import open_agents
from carrier.services import Supervisor
from carrier.tasks import run_scheduler

__all__ = ["start"]


async def start(
    host: PluginHost, characters: Sequence[str], *, only: Collection[str] | None = None
) -> int:
    """Serve until SIGINT/SIGTERM; the exit status (1: no client is enabled)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this loop
            loop.add_signal_handler(signum, stop.set)
    try:
        async with (
            open_agents(host, characters) as runtimes,
            Supervisor(host, runtimes, only=only) as supervisor,
        ):
            names = [health.name for health in supervisor.health()]
            agents = ", ".join(r.character.name for r in runtimes)
            if not names:
                print(_nothing_to_serve(host, agents, only), file=sys.stderr)
                return 1
            print(f"carrier start: {agents} on {', '.join(names)}", file=sys.stderr)
            # scheduled tasks and approvals' expiry run on the embedded scheduler
            await run_scheduler(runtimes, stop)
            print("carrier start: stopping", file=sys.stderr)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    return 0


def _nothing_to_serve(host: PluginHost, agents: str, only: Collection[str] | None) -> str:
    registered = host.clients.names()
    if only is not None:
        unknown = sorted(set(only) - set(registered))
        if unknown:
            return (
                f"carrier start: no client named {', '.join(map(repr, unknown))}; "
                f"installed clients: {', '.join(registered) or 'none'}."
            )
    if not registered:
        return (
            "carrier start: no client plugin is installed; install one "
            "(pip install carrier-plugin-telegram) or use 'carrier serve' for HTTP."
        )
    return (
        f"carrier start: no client is enabled for {agents}: configure one "
        f"(installed: {', '.join(registered)}; e.g. CARRIER_TELEGRAM_TOKEN or the "
        f"character's TELEGRAM_TOKEN secret), and check the characters' 'clients' lists."
    )
