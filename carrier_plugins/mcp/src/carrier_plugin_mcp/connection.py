"""One live MCP session per configured server and process, as a supervised service.

:class:`McpConnection` owns the SDK ``Client``: it connects (under the server's connect
timeout), lists the tools, follows ``list_changed`` (a ``subscriptions/listen`` stream
on 2026-07-28 connections, notifications on older ones), pings a quiet connection, and
when the server fails to start or dies it reports that in its
:class:`carrier.services.ServiceHealth` and connects again after a backoff (tenacity, as
the kernel's :class:`carrier.services.Supervisor`), while the other servers keep
working. :class:`McpManager` holds the connections of one host, shared by its runtimes
and closed when the last one stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import weakref
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    RequestParamsMeta,
    Resource,
    ResourceListChangedNotification,
    Tool,
    ToolListChangedNotification,
)

from carrier.errors import CarrierError, ConfigurationError
from carrier.services import ServiceHealth

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier_plugin_mcp.config import ServerConfig
    from carrier_plugin_mcp.settings import McpSettings

__all__ = [
    "IDEMPOTENCY_KEY",
    "McpConnection",
    "McpManager",
    "ServerUnavailableError",
    "ToolCallError",
    "manager_for",
]

logger = logging.getLogger("carrier.mcp")

#: Errors that mean the connection is gone (the server exited, the socket closed).
_GONE = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    ConnectionError,
    EOFError,
)


#: The ``_meta`` key of a tool call that carries the call's idempotency key (message id,
#: step, index): a server that deduplicates can use it; a retried call repeats it.
IDEMPOTENCY_KEY = "dev.carrier/idempotency-key"


class ServerUnavailableError(CarrierError):
    """The server is not connected (starting, or restarting after a failure)."""


class ToolCallError(CarrierError):
    """A tool call did not complete (timeout, protocol error, lost connection)."""


class _ConnectionLostError(Exception):
    """Internal: the session ended; the supervisor connects again."""


class McpConnection:
    """The session with one server, kept up until :meth:`aclose`.

    Args:
        config: The server.
        settings: The operator's MCP settings (default timeouts, backoff).
    """

    def __init__(self, config: ServerConfig, settings: McpSettings) -> None:
        self.config = config
        self.health = ServiceHealth(f"mcp:{config.name}")
        self.connect_timeout_s = config.connect_timeout_s or settings.connect_timeout_s
        self.call_timeout_s = config.call_timeout_s or settings.call_timeout_s
        #: Characters of a result (or resource) the prompt gets.
        self.output_max_chars = config.output_max_chars or settings.output_max_chars
        self._settings = settings
        self.tools: list[Tool] = []
        self.resources: dict[str, str] = {}
        #: Bumped whenever ``tools`` or ``resources`` change.
        self.version = 0
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._stale = asyncio.Event()
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._modern = True
        self._listeners: list[Callable[[], None]] = []

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"carrier mcp:{self.config.name}"
            )

    async def first_attempt(self) -> None:
        """Wait until the first connection attempt ended, either way (put a timeout
        around it)."""
        await self._attempted.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.health.set("stopped", self.health.detail)

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever the tools or resources change; returns the undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener()

    # ---- the supervised session --------------------------------------------------------

    async def _supervise(self) -> None:
        from tenacity import (
            AsyncRetrying,
            RetryCallState,
            retry_if_exception_type,
            wait_exponential,
        )

        def failed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.health.restarts += 1
            self.health.set("restarting", _describe(error))
            logger.error(
                "MCP server %r failed (%s); connecting again in %.1f s",
                self.config.name,
                _describe(error),
                wait,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(
                multiplier=self._settings.backoff_initial_s, max=self._settings.backoff_max_s
            ),
            before_sleep=failed,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._serve_once()
        finally:
            self._ready.clear()
            self._client = None

    async def _serve_once(self) -> None:
        self._broken.clear()
        self._stale.clear()
        if self.health.restarts:
            self.health.set("starting", "")
        try:
            async with AsyncExitStack() as stack:
                listening = asyncio.Event()
                try:
                    async with asyncio.timeout(self.connect_timeout_s):
                        client = await stack.enter_async_context(await self._new_client(stack))
                        task = asyncio.get_running_loop().create_task(
                            self._listen(client, listening)
                        )
                        stack.callback(task.cancel)
                        await listening.wait()  # no replay: subscribe, then list
                        await self._refresh(client)
                except TimeoutError as exc:
                    raise TimeoutError(
                        f"it did not start within {self.connect_timeout_s:g} s"
                    ) from exc
                self._client = client
                self._ready.set()
                self._attempted.set()
                self.health.ready(f"{len(self.tools)} tools")
                await self._watch(client)
        finally:
            self._ready.clear()
            self._client = None
            self._attempted.set()

    async def _new_client(self, stack: AsyncExitStack) -> Client:
        config = self.config
        transport: Any
        if config.transport == "stdio":
            params = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=dict(config.env) or None,
                cwd=config.cwd,
            )
            transport = stdio_client(params, errlog=_errlog())
        else:
            # The SDK's own default timeouts (a bare client has a flat 5 s one).
            timeout = httpx2.Timeout(self.connect_timeout_s, read=max(300.0, self.call_timeout_s))
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=dict(config.headers), timeout=timeout)
            )
            transport = streamable_http_client(config.url, http_client=http)
        return Client(
            transport,
            mode=config.protocol,
            read_timeout_seconds=self.call_timeout_s,
            message_handler=self._on_message,
        )

    async def _on_message(self, message: Any) -> None:
        """Notifications of handshake-era connections (2026-07-28 ones use ``listen``)."""
        if isinstance(message, Exception):
            logger.warning("MCP server %r: %s", self.config.name, _describe(message))
            return
        inner = getattr(message, "root", message)
        if isinstance(inner, ToolListChangedNotification | ResourceListChangedNotification):
            self._stale.set()

    async def _listen(self, client: Client, listening: asyncio.Event) -> None:
        """Follow ``list_changed`` on a 2026-07-28 connection; set ``listening`` once
        subscribed (or at once on an older connection, which notifies without asking)."""
        self._modern = True
        try:
            async with client.listen(
                tools_list_changed=True, resources_list_changed=self.config.resources
            ) as subscription:
                listening.set()
                async for _event in subscription:
                    self._stale.set()
        except ListenNotSupportedError:
            self._modern = False
            listening.set()  # an older connection: notifications arrive in _on_message
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not listening.is_set():  # refused: work on, without change notifications
                logger.warning(
                    "MCP server %r refused subscriptions/listen (%s); its tool list is not "
                    "refreshed until it reconnects",
                    self.config.name,
                    _describe(exc),
                )
                listening.set()
                return
            logger.warning("MCP server %r: change stream ended (%s)", self.config.name, exc)
            self._broken.set()

    async def _watch(self, client: Client) -> None:
        """Refresh on change, ping when quiet; return (raise) when the session is gone."""
        interval = self._settings.ping_interval_s or None
        while True:
            stale = asyncio.ensure_future(self._stale.wait())
            broken = asyncio.ensure_future(self._broken.wait())
            done, pending = await asyncio.wait(
                {stale, broken}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
            )
            for future in pending:
                future.cancel()
            if broken in done:
                raise _ConnectionLostError("the connection was lost")
            if stale in done:
                self._stale.clear()
                async with asyncio.timeout(self.connect_timeout_s):
                    await self._refresh(client)
                self.health.report(f"{len(self.tools)} tools")
            elif not self._modern:  # a 2026-07-28 server has no ping; its stream ends
                async with asyncio.timeout(self.connect_timeout_s):
                    await client.send_ping()

    async def _refresh(self, client: Client) -> None:
        tools: list[Tool] = []
        cursor: str | None = None
        while True:
            listed = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(listed.tools)
            cursor = listed.next_cursor
            if not cursor:
                break
        resources = await self._read_resources(client) if self.config.resources else {}
        if [t.model_dump() for t in tools] != [t.model_dump() for t in self.tools] or (
            resources != self.resources
        ):
            self.tools, self.resources = tools, resources
            self._changed()

    async def _read_resources(self, client: Client) -> dict[str, str]:
        found: list[Resource] = []
        cursor: str | None = None
        while True:
            listed = await client.list_resources(cursor=cursor, cache_mode="refresh")
            found.extend(listed.resources)
            cursor = listed.next_cursor
            if not cursor or len(found) >= 50:
                break
        texts: dict[str, str] = {}
        for resource in found[:50]:
            read = await client.read_resource(str(resource.uri))
            parts = [getattr(c, "text", None) for c in read.contents]
            text = "\n".join(p for p in parts if isinstance(p, str))
            if text:
                texts[str(resource.uri)] = text
        return texts

    # ---- calls -----------------------------------------------------------------------

    async def call(
        self, tool: str, arguments: dict[str, Any], *, idempotency_key: str | None = None
    ) -> CallToolResult:
        """Call ``tool``, waiting up to the connect timeout for a (re)starting server;
        ``idempotency_key`` travels in the request's ``_meta`` (:data:`IDEMPOTENCY_KEY`).

        Raises:
            ServerUnavailableError: The server is not connected.
            ToolCallError: The call timed out or the connection failed during it.
        """
        client = await self._connected()
        timeout = self.call_timeout_s
        try:
            async with asyncio.timeout(timeout + 1.0):
                return await client.call_tool(
                    tool,
                    arguments,
                    read_timeout_seconds=timeout,
                    meta=_meta(idempotency_key),
                )
        except TimeoutError as exc:
            raise ToolCallError(f"it took longer than {timeout:g} s") from exc
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolCallError(f"it took longer than {timeout:g} s") from exc
            if exc.code == CONNECTION_CLOSED:
                self._broken.set()
                raise ToolCallError(
                    f"the server {self.config.name!r} closed the connection; it is restarting"
                ) from exc
            raise ToolCallError(f"the server answered with an error: {exc.message}") from exc
        except _GONE as exc:
            self._broken.set()
            raise ToolCallError(
                f"the connection to {self.config.name!r} was lost; it is restarting"
            ) from exc

    async def _connected(self) -> Client:
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.connect_timeout_s):
                    await self._ready.wait()
        client = self._client
        if client is None or not self._ready.is_set():
            detail = self.health.detail or self.health.state
            raise ServerUnavailableError(
                f"MCP server {self.config.name!r} is not connected ({detail})."
            )
        return client


def _meta(idempotency_key: str | None) -> RequestParamsMeta | None:
    if not idempotency_key:
        return None
    meta = RequestParamsMeta()
    meta[IDEMPOTENCY_KEY] = idempotency_key  # type: ignore[literal-required]
    return meta


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, or the process's real one when ours is
    no file (captured by a test or a CLI runner)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    raise ConfigurationError("No standard error stream to give an MCP server's process.")


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions)
    text = str(error) or type(error).__name__
    return (
        text
        if isinstance(error, TimeoutError | _ConnectionLostError)
        else (f"{type(error).__name__}: {text}")
    )


class McpManager:
    """The connections of one host: one per server, started on first use, shared by the
    host's runtimes and closed when the last of them releases the manager."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.connections: dict[str, McpConnection] = {}
        self._users = 0

    def acquire(self) -> None:
        self._users += 1

    def connection(self, config: ServerConfig) -> McpConnection:
        found = self.connections.get(config.name)
        if found is None:
            found = self.connections[config.name] = McpConnection(config, self.settings)
            found.start()
        return found

    async def release(self, host: PluginHost) -> None:
        self._users -= 1
        if self._users > 0:
            return
        _MANAGERS.pop(host, None)
        connections, self.connections = list(self.connections.values()), {}
        for connection in connections:
            await connection.aclose()


_MANAGERS: weakref.WeakKeyDictionary[PluginHost, McpManager] = weakref.WeakKeyDictionary()


def manager_for(host: PluginHost, settings: McpSettings) -> McpManager:
    """The host's manager (one per host, so one connection per server and process)."""
    manager = _MANAGERS.get(host)
    if manager is None:
        manager = _MANAGERS[host] = McpManager(settings)
    manager.acquire()
    return manager
