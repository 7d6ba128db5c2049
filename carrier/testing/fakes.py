"""Test doubles for plugin authors: ``FakeModel`` (scripted), ``FunctionModel``,
``EventRecorder`` (a plugin that keeps every event)."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Self

import pluggy

from carrier.builtin.echo_model import hashed_embedding
from carrier.protocols import Model
from carrier.types import (
    ActionCall,
    Event,
    EventType,
    ModelRequest,
    ModelResponse,
    StreamChunk,
    Usage,
)

__all__ = ["EventRecorder", "FakeModel", "FunctionModel", "prompt_text"]

hookimpl = pluggy.HookimplMarker("carrier")

ActionLike = ActionCall | str | tuple[str, dict[str, Any]]


def _call(action: ActionLike) -> ActionCall:
    if isinstance(action, ActionCall):
        return action
    if isinstance(action, str):
        return ActionCall(name=action)
    return ActionCall(name=action[0], arguments=dict(action[1]))


class _Embeds(Model):
    embedding_dimension: int | None = None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.embedding_dimension:
            return await super().embed(texts)
        return [hashed_embedding(t, self.embedding_dimension) for t in texts]

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        response = await self.generate(request)
        words = response.text.split(" ")
        for index, word in enumerate(words):
            yield StreamChunk(text=word if index == 0 else " " + word)
        yield StreamChunk(response=response)


class FakeModel(_Embeds):
    """A scripted model: ``queue()`` replies, read ``requests`` afterwards.

    With an empty queue it answers ``default_text``. ``embedding_dimension``
    turns on deterministic hashed-word embeddings; ``latency_s`` simulates a slow
    model without blocking the event loop. ``keep_requests=False`` keeps none (a
    benchmark's long run would otherwise hold every prompt it ever sent).
    """

    __test__ = False

    def __init__(
        self,
        *,
        name: str = "fake",
        default_text: str = "ok",
        embedding_dimension: int | None = None,
        latency_s: float = 0.0,
        context_window: int | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.name = name
        self.keep_requests = keep_requests
        self.default_text = default_text
        self.embedding_dimension = embedding_dimension
        self.latency_s = latency_s
        self.context_window = context_window
        self.requests: list[ModelRequest] = []
        self._queue: deque[ModelResponse | BaseException] = deque()

    def queue(
        self,
        text: str = "",
        *,
        actions: Iterable[ActionLike] = (),
        thought: str | None = None,
        error: BaseException | None = None,
        response: ModelResponse | None = None,
        times: int = 1,
    ) -> Self:
        """Script the next reply (or error); chainable."""
        for _ in range(times):
            if error is not None:
                self._queue.append(error)
            else:
                self._queue.append(
                    response
                    or ModelResponse(
                        text=text,
                        thought=thought,
                        action_calls=[_call(a) for a in actions],
                        model=self.name,
                        usage=Usage(output_tokens=len(text) // 4 + 1),
                    )
                )
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        return len(self._queue)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if self.keep_requests:
            self.requests.append(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if not self._queue:
            return ModelResponse(text=self.default_text, model=self.name)
        item = self._queue.popleft()
        if isinstance(item, BaseException):
            raise item
        return item


class FunctionModel(_Embeds):
    """A model whose answer is computed by ``function(request)`` (sync or async),
    returning a ``ModelResponse`` or a string."""

    __test__ = False

    def __init__(
        self,
        function: Callable[[ModelRequest], ModelResponse | str | Awaitable[ModelResponse | str]],
        *,
        name: str = "function",
        embedding_dimension: int | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.function = function
        self.name = name
        self.embedding_dimension = embedding_dimension
        self.keep_requests = keep_requests
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if self.keep_requests:
            self.requests.append(request)
        result = self.function(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ModelResponse(text=result, model=self.name)
        return result


class EventRecorder:
    """A plugin that records every event: ``host.register(recorder, name="recorder")``."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def carrier_on_event(self, event: Event) -> None:
        self.events.append(event)

    def types(self, message_id: str | None = None) -> list[EventType]:
        """Event types in order, optionally of one message."""
        return [e.type for e in self.events if message_id is None or e.message_id == message_id]

    def of(self, type: EventType) -> list[Event]:
        return [e for e in self.events if e.type == type]


def prompt_text(request: ModelRequest) -> str:
    """The whole prompt of ``request`` as one text: the system prompt, then each
    message. Per-message sections (providers, facts, action results) sit in the last
    message, after the history (``carrier.layout``), not in ``request.system``."""
    return "\n\n".join([request.system or "", *(m.content for m in request.messages)])
