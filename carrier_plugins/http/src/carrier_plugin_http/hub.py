"""``AgentHub``: the agents one server hosts, and the routing of loop events to streams.

The hub is registered on the host as a ``carrier_on_event`` observer. A streaming
request gives its message an id before the runtime sees it, so the hub can route
that message's events (actions starting and finishing, the reply being sent) to
the request's queue while tokens arrive through ``on_text``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import carrier
from carrier.types import EventType
from carrier_plugin_http import schemas
from carrier_plugin_http.errors import failure, not_answered

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.protocols import MemoryStore
    from carrier.runtime import AgentRuntime
    from carrier.types import Event, IncomingMessage, Reply

__all__ = ["AgentHub", "StreamItem"]

#: Loop events a stream forwards to its client.
STREAMED_EVENTS = frozenset(
    {
        EventType.ACTION_STARTED,
        EventType.ACTION_COMPLETED,
        EventType.ACTION_FAILED,
        EventType.MODEL_RETRY,
        EventType.MODEL_FALLBACK,
    }
)
#: The event fields a client sees. Errors and reasons stay in the log: they may name
#: exceptions or backend URLs.
STREAMED_FIELDS = frozenset({"action", "success", "refused", "attempt", "wait_s"})


@dataclass(frozen=True)
class StreamItem:
    """One Server-Sent Event: its ``event`` name and JSON ``data``."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


class AgentHub:
    """The started runtimes of one server, by id and (case-insensitive) name.

    Args:
        runtimes: Started runtimes; they should share ``host`` (and usually a store).
        host: The host whose events are observed.
    """

    def __init__(self, runtimes: Iterable[AgentRuntime], *, host: PluginHost) -> None:
        self.host = host
        self._by_id: dict[str, AgentRuntime] = {}
        self._by_name: dict[str, AgentRuntime] = {}
        for runtime in runtimes:
            if runtime.agent_id in self._by_id:
                raise carrier.ConfigurationError(
                    f"Two characters have the agent id {runtime.agent_id!r} "
                    f"({runtime.character.name!r}); give each agent its own 'id' or name."
                )
            self._by_id[runtime.agent_id] = runtime
            for name in (runtime.character.name, runtime.character.username):
                if name:
                    self._by_name.setdefault(name.lower(), runtime)
        self._streams: dict[str, asyncio.Queue[StreamItem | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._plugin_name = f"carrier_plugin_http.hub.{id(self)}"
        self._registered = False

    # ---- lifecycle ---------------------------------------------------------------

    def attach(self) -> None:
        """Start serving (the event observer is registered while a stream is open, so
        runtimes emit no events for plain requests)."""

    def _observe(self, on: bool) -> None:
        if on and not self._registered:
            self.host.register(self, name=self._plugin_name)
            self._registered = True
        elif not on and self._registered:
            self.host.unregister(self._plugin_name)
            self._registered = False

    async def aclose(self) -> None:
        """Let messages whose client went away finish, then unregister."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._observe(False)

    # ---- agents ------------------------------------------------------------------

    @property
    def runtimes(self) -> list[AgentRuntime]:
        """Every hosted runtime, in the order given."""
        return list(self._by_id.values())

    def find(self, key: str) -> AgentRuntime | None:
        """The agent whose id is ``key``, or whose name or username is (any case)."""
        return self._by_id.get(key) or self._by_name.get(key.lower())

    def store(self) -> MemoryStore:
        """The store of the first agent (the server's shared store)."""
        return self.runtimes[0].store

    def is_agent(self, user_id: str) -> bool:
        """Whether ``user_id`` is a hosted agent's id (no user may speak or read as one)."""
        return user_id in self._by_id

    def is_reserved_room(self, room_id: str) -> bool:
        """Whether a hosted runtime keeps ``room_id`` for itself (knowledge, autonomous
        runs, ...): no user may post into it or read it."""
        return any(runtime.is_reserved_room(room_id) for runtime in self._by_id.values())

    # ---- events ------------------------------------------------------------------

    @carrier.hookimpl
    def carrier_on_event(self, event: Event) -> None:
        """Forward an event of a streamed message to its stream."""
        if not self._streams or event.message_id is None or event.type not in STREAMED_EVENTS:
            return
        queue = self._streams.get(event.message_id)
        if queue is not None:
            shown = {k: v for k, v in event.data.items() if k in STREAMED_FIELDS}
            data = {"type": event.type.value, **_jsonable(shown)}
            if event.duration_ms:
                data["durationMs"] = round(event.duration_ms, 3)
            queue.put_nowait(StreamItem("action" if "action" in event.data else "event", data))

    # ---- messages ----------------------------------------------------------------

    async def send(self, runtime: AgentRuntime, incoming: IncomingMessage) -> Reply:
        """Handle one message and wait for the reply."""
        return await runtime.handle(incoming)

    async def stream(
        self,
        runtime: AgentRuntime,
        incoming: IncomingMessage,
        *,
        on_refused: Callable[[], Awaitable[None]] | None = None,
        request_id: str = "-",
    ) -> AsyncIterator[StreamItem]:
        """Handle one message, yielding tokens, action events and the final answer.

        Yields ``token`` items (``{"text": delta}``), ``action`` items, then either
        ``done`` (``{"responses": [...]}``) or ``error`` (``{"error", "status",
        "requestId"}``, with a safe text; the details are logged under ``request_id``).
        If the client goes away, the message is still answered and stored; the hub
        waits for it on close. ``on_refused`` runs if the message could not be stored.
        """
        message_id = incoming.message_id or str(uuid.uuid4())
        incoming = incoming.model_copy(update={"message_id": message_id})
        queue: asyncio.Queue[StreamItem | None] = asyncio.Queue()
        self._streams[message_id] = queue
        self._observe(True)

        async def on_text(delta: str) -> None:
            if delta:
                queue.put_nowait(StreamItem("token", {"text": delta}))

        async def run() -> None:
            try:
                reply = await runtime.handle(incoming, on_text=on_text)
                if reply.error:
                    error = not_answered(reply, request_id)
                    queue.put_nowait(StreamItem("error", _error(error, 503, request_id)))
                else:
                    contents = schemas.contents(runtime, reply.responses)
                    queue.put_nowait(StreamItem("done", {"responses": contents}))
            except Exception as exc:  # the message could not even be stored
                if on_refused is not None:
                    with contextlib.suppress(Exception):
                        await on_refused()
                status, error = failure(exc, request_id)
                queue.put_nowait(StreamItem("error", _error(error, status, request_id)))
            finally:
                queue.put_nowait(None)
                self._streams.pop(message_id, None)
                if not self._streams:
                    self._observe(False)

        task = asyncio.create_task(run(), name=f"carrier-http-{message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        yield StreamItem("start", {"messageId": message_id, "agentId": runtime.agent_id})
        while (item := await queue.get()) is not None:
            yield item


def _error(error: str, status: int, request_id: str) -> dict[str, Any]:
    return {"error": error, "status": status, "requestId": request_id}


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Event data made safe for JSON (unknown objects become strings)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [v if isinstance(v, str | int | float | bool) else str(v) for v in value]
        else:
            out[key] = str(value)
    return out
