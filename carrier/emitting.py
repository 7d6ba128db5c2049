"""``Emitting``: how the runtime emits events — to the host's ``carrier_on_event``
observers and to this runtime's own listeners (``AgentRuntime.listen``)."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from carrier.types import Event, EventType, Memory

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage

__all__ = ["Emitting", "Listener", "trace_context"]

logger = logging.getLogger("carrier.runtime")

#: A runtime-local event listener (``AgentRuntime.listen``).
Listener = Callable[[Event], Awaitable[None] | None]


class Emitting:
    """The events part of the runtime; the base of ``Admission``."""

    host: PluginHost
    agent_id: str
    _listeners: list[Listener]

    async def emit(
        self, type: EventType, message: Memory | None = None, duration_ms: float = 0.0, **data: Any
    ) -> None:
        """Emit an event to the host's observers and this runtime's listeners (free
        when there are none)."""
        listeners = self._listeners
        if not listeners and not self.host.has_observers:
            return
        event = Event(
            type=type,
            agent_id=self.agent_id,
            room_id=message.room_id if message else None,
            message_id=message.id if message else None,
            duration_ms=duration_ms,
            data=data,
        )
        for listener in list(listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("A listener of %s events failed", type.value)
        if self.host.has_observers:
            await self.host.emit(event)

    def listen(self, listener: Callable[[Event], Awaitable[None] | None]) -> Callable[[], None]:
        """Call ``listener`` with every event this runtime emits, in this process (a
        client listens for ``message_sent`` to deliver what SEND_MESSAGE sent to its
        rooms). Keep it quick: the stage that emitted waits for it. A listener that
        raises is logged. Returns the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return stop

    async def _chain_event(
        self, kind: str, data: dict[str, Any], message: Memory | None = None
    ) -> None:
        event = EventType.MODEL_RETRY if kind == "retry" else EventType.MODEL_FALLBACK
        await self.emit(event, message, **data)

    def _chain_events_for(
        self, message: Memory | None
    ) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        """Retry and fallback events carrying the message (so its stream sees them)."""

        async def on_event(kind: str, data: dict[str, Any]) -> None:
            await self._chain_event(kind, data, message)

        return on_event


def trace_context(runtime: AgentRuntime, message: IncomingMessage, executor: str) -> dict[str, str]:
    """The ``carrier_trace_context`` headers of every plugin, merged over the ones the
    message already carries: what an executor ships with a message to another process.
    An implementation that raises or returns something else than a ``str -> str`` dict
    is logged and skipped."""
    merged = dict(message.trace_context)
    hook = runtime.host.pm.hook.carrier_trace_context
    for impl in reversed(hook.get_hookimpls()):
        try:
            found = impl.function(runtime=runtime, message=message, executor=executor)
        except Exception:
            logger.exception("carrier_trace_context of %r failed", impl.plugin_name)
            continue
        if found is None:
            continue
        if not isinstance(found, dict) or inspect.isawaitable(found):
            logger.error(
                "carrier_trace_context of %r returned %r, not a dict of headers",
                impl.plugin_name,
                type(found).__name__,
            )
            continue
        merged.update({str(k): str(v) for k, v in found.items()})
    return merged
