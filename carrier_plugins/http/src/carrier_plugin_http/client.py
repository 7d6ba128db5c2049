"""``HttpClient``: the HTTP API as a client, so ``carrier start`` serves it beside the
chat platforms (``CARRIER_HTTP_START=true``; ``carrier serve`` needs no setting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import uvicorn

from carrier.services import Client, ServiceHealth
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.security import check_bind_address

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_http.settings import HttpSettings

__all__ = ["HttpClient"]


class HttpClient(Client):
    """One server for every agent it serves, on ``CARRIER_HTTP_HOST:PORT``."""

    name = "http"

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings

    def select(self, runtimes: Sequence[AgentRuntime]) -> dict[str, list[AgentRuntime]]:
        if not self.settings.start or not runtimes:
            return {}
        return {f"{self.settings.host}:{self.settings.port}": list(runtimes)}

    async def run(self, runtimes: Sequence[AgentRuntime], health: ServiceHealth) -> None:
        settings = self.settings
        check_bind_address(settings.host, settings)
        app = create_app(AgentHub(list(runtimes), host=runtimes[0].host), settings)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        # ``carrier start`` owns SIGINT/SIGTERM: it stops every client, this one included
        server.capture_signals = _no_signals  # type: ignore[method-assign]
        serving = asyncio.ensure_future(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()  # startup failed (port taken): raise its error
                    raise OSError(f"the HTTP server on {settings.host}:{settings.port} stopped")
                await asyncio.sleep(0.02)
            health.ready(f"http://{settings.host}:{settings.port}/")
            await asyncio.shield(serving)
        finally:
            server.should_exit = True  # finish the requests in flight, then close
            with contextlib.suppress(Exception):
                await serving


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield
