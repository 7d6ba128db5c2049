"""Running the app: ``serve`` (the ``carrier serve`` command) and ``running_server``
(a server on a free loopback port, for tests and benchmarks)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import uvicorn

from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.security import check_bind_address

if TYPE_CHECKING:
    from fastapi import FastAPI

    from carrier.host import PluginHost
    from carrier_plugin_http.settings import HttpSettings

__all__ = ["running_server", "serve"]


async def serve(
    host: PluginHost,
    characters: Sequence[str],
    *,
    bind_host: str | None = None,
    port: int | None = None,
) -> int:
    """Start one runtime per character on a shared store and serve them until stopped.

    Args:
        host: The plugin host (plugins autoloaded by the CLI).
        characters: Character files; none means ``CARRIER_CHARACTER`` or the default.
        bind_host: Address to bind instead of ``CARRIER_HTTP_HOST``.
        port: Port instead of ``CARRIER_HTTP_PORT``.

    Returns:
        The exit status.

    Raises:
        carrier.ConfigurationError: A non-loopback address without a token, two
            agents with the same id, or bad settings.
    """
    from carrier.runtime import open_agents

    settings: HttpSettings = host.settings.get("http")
    bind_host = bind_host or settings.host
    port = settings.port if port is None else port
    check_bind_address(bind_host, settings)
    async with open_agents(host, characters) as runtimes:
        hub = AgentHub(runtimes, host=host)
        # the tokenless server answers to the address it is bound to
        app = create_app(hub, settings.model_copy(update={"host": bind_host, "port": port}))
        config = uvicorn.Config(app, host=bind_host, port=port, log_level="info", access_log=False)
        server = uvicorn.Server(config)
        names = ", ".join(f"{r.character.name} ({r.agent_id})" for r in runtimes)
        serving = asyncio.create_task(_exit_status(server))
        try:
            while not server.started:  # uvicorn has no event for it
                if serving.done():  # startup failed (port taken)
                    break
                await asyncio.sleep(0.01)
            if server.started:  # the bound port: port 0 picks a free one
                bound = server.servers[0].sockets[0].getsockname()[1]
                print(f"carrier serve: {names} on http://{bind_host}:{bound}/", file=sys.stderr)
            status = await serving
        finally:
            if not serving.done():  # cancelled while serving: stop the server first
                server.should_exit = True
                await asyncio.gather(serving, return_exceptions=True)
        return status
    return 1  # pragma: no cover - open_agents never swallows exceptions


async def _exit_status(server: uvicorn.Server) -> int:
    """Serve until stopped; the exit status. 1 when uvicorn exits because it cannot
    listen (it has logged why): its ``SystemExit``, raised in a task, would end the
    process with a traceback and uvicorn's status 3, which means something else here."""
    try:
        await server.serve()
    except SystemExit:
        return 1
    return 0 if server.started else 1


@asynccontextmanager
async def running_server(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop; yield its base URL.

    Port 0 picks a free port. The server stops (and finishes in-flight requests)
    when the block exits.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        await task
