"""``LocalModel``: Carrier's ``Model`` over the local chat engine and embedder.

The chat weights and the embedding session load separately and lazily, each in a
worker thread on first use: embedding never loads the GGUF, chatting never loads
onnxruntime. Generation runs in a worker thread too; streamed tokens cross back
to the event loop through a queue. ``warm_up`` (called by the runtime as it starts)
does the loading ahead of the first message and prefills the persona into llama.cpp's
slot; a request that comes meanwhile waits for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError
from carrier.protocols import Model
from carrier.types import ModelClass, ModelRequest, ModelResponse, StreamChunk, Usage
from carrier_plugin_local.actions import (
    action_instructions,
    action_schema,
    bounded_schema,
    parse_action_answer,
    parse_structured,
)
from carrier_plugin_local.chat import ChatEngine, Prompt
from carrier_plugin_local.embeddings import DIMENSION, Embedder

if TYPE_CHECKING:
    from carrier_plugin_local.settings import LocalSettings

__all__ = ["LocalModel"]

#: Fewest tokens an action or structured answer may use, so its JSON can close: every
#: string in the grammar is bounded (``actions.TEXT_MAX_CHARS``, ``ARGUMENT_MAX_CHARS``)
#: and a token is at least one character, so a degenerate answer still ends in time.
_MIN_JSON_TOKENS = 640
#: Texts embedded per worker-thread call, so cancellation is noticed between calls.
_EMBED_CHUNK = 512


def _scope(request: ModelRequest) -> str | None:
    """The conversation a request continues: its room and model class (the same room's
    evaluators have prompts of their own)."""
    room = request.metadata.get("room_id")
    return f"{room}:{request.model_class.value}" if isinstance(room, str) else None


def _history_ids(request: ModelRequest) -> list[str] | None:
    """The ids of the request's history messages (``compose_context`` lists them)."""
    ids = request.metadata.get("history_ids")
    return [str(i) for i in ids] if isinstance(ids, list) else None


class LocalModel(Model):
    """Chat on llama.cpp with a GGUF model, embeddings with MiniLM on onnxruntime."""

    embedding_dimension = DIMENSION

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.chat = ChatEngine(settings)
        self.embedder = Embedder(threads=settings.threads, batch_size=settings.embedding_batch_size)
        self.context_window = settings.context_size
        self._warming: set[asyncio.Future[None]] = set()
        self.calls_actions = settings.actions
        # the default SmolLM2-135M: short prompts, no evaluator that needs reasoning
        self.small = settings.model_path is None
        self.name = "local:" + (
            settings.model_path.name.removesuffix(".gguf")
            if settings.model_path
            else "SmolLM2-135M-Instruct"
        )
        self.embedding_name = "local:all-MiniLM-L6-v2"

    def __repr__(self) -> str:
        return f"<LocalModel {self.name!r}>"

    # ---- Prompt --------------------------------------------------------------------

    def prepare(self, request: ModelRequest) -> tuple[Prompt, str]:
        """The engine prompt for ``request`` and its mode: text, actions or structured."""
        settings = self.settings
        system = request.system or ""
        mode = "text"
        schema: dict[str, Any] | None = None
        max_tokens = request.max_tokens or settings.max_tokens
        if request.response_schema is not None:
            mode, schema = "structured", bounded_schema(request.response_schema)
        elif request.actions:
            mode, schema = "actions", action_schema(request.actions)
            system = f"{system}\n\n{action_instructions(request.actions)}".strip()
        if schema is not None:
            max_tokens = max(max_tokens, _MIN_JSON_TOKENS)
        max_tokens = min(max_tokens, self.chat.context_size // 2)
        messages = [{"role": "system", "content": system}] if system else []
        for message in request.messages:
            role = message.role if message.role in ("user", "assistant", "system") else "user"
            content = f"{message.name}: {message.content}" if message.name else message.content
            messages.append({"role": role, "content": content})
        temperature = request.temperature
        prompt = Prompt(
            messages=messages,
            max_tokens=max_tokens,
            temperature=settings.temperature if temperature is None else temperature,
            seed=request.seed if request.seed is not None else settings.seed,
            stop=[
                *request.stop,
                *(["\n\n"] if settings.stop_at_blank_line and schema is None else []),
            ],
            json_schema=schema,
            repeat_penalty=settings.repeat_penalty,
            scope=_scope(request),
            history_ids=_history_ids(request),
        )
        return self.chat.fit(prompt), mode

    async def _ready(self, request: ModelRequest) -> tuple[Prompt, str]:
        await self._warmed()
        if not self.chat.loaded:
            await asyncio.to_thread(self.chat.load)
        return self.prepare(request)

    def _response(
        self, request: ModelRequest, mode: str, text: str, finish: str | None, usage: Usage
    ) -> ModelResponse:
        if mode == "actions":
            reply, calls, _problem = parse_action_answer(text, request.actions)
            return ModelResponse(
                text=reply, action_calls=calls, usage=usage, model=self.name, finish_reason=finish
            )
        if mode == "structured":
            assert request.response_schema is not None
            value, _problem = parse_structured(text, request.response_schema)
            return ModelResponse(
                text=text, structured=value, usage=usage, model=self.name, finish_reason=finish
            )
        return ModelResponse(text=text.strip(), usage=usage, model=self.name, finish_reason=finish)

    # ---- Model ---------------------------------------------------------------------

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request``: text, an action call, or a structured object."""
        prompt, mode = await self._ready(request)
        result = await asyncio.to_thread(self.chat.complete, prompt)
        choice = result["choices"][0]
        usage = result.get("usage", {})
        return self._response(
            request,
            mode,
            choice.get("message", {}).get("content") or "",
            choice.get("finish_reason"),
            Usage(
                input_tokens=usage.get("prompt_tokens", prompt.prompt_tokens),
                output_tokens=usage.get("completion_tokens", 0),
                # llama.cpp's timings: prompt tokens reused from the slot's cache
                cache_read_input_tokens=result.get("timings", {}).get("cache_n"),
            ),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as the engine produces them, then the final response.

        Action and structured answers are JSON, so they are yielded whole once
        parsed. Closing or cancelling the iteration stops the engine at the next
        token and waits for it to free the context.
        """
        prompt, mode = await self._ready(request)
        if mode != "text":
            response = await self.generate(request)
            if response.text:
                yield StreamChunk(text=response.text)
            yield StreamChunk(response=response)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> None:
            if not stop.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, chunk)

        async def run() -> None:
            try:
                await asyncio.to_thread(self.chat.stream, prompt, on_chunk, stop)
            finally:
                if not stop.is_set():
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = asyncio.ensure_future(run())
        pieces: list[str] = []
        finish: str | None = None
        timings: dict[str, Any] = {}
        try:
            while (chunk := await queue.get()) is not None:
                choice = chunk["choices"][0] if chunk.get("choices") else {}
                delta = (choice.get("delta") or {}).get("content")
                finish = choice.get("finish_reason") or finish
                timings = chunk.get("timings") or timings
                if delta:
                    pieces.append(delta)
                    yield StreamChunk(text=delta)
            await worker  # re-raises the engine's error, if any
        finally:
            stop.set()
            if not worker.done():
                await asyncio.wait({worker})
        usage = Usage(
            input_tokens=timings.get("prompt_n", 0) + timings.get("cache_n", 0)
            or prompt.prompt_tokens,
            output_tokens=timings.get("predicted_n", len(pieces)),
            cache_read_input_tokens=timings.get("cache_n"),
        )
        text = "".join(pieces)
        yield StreamChunk(
            response=ModelResponse(text=text, usage=usage, model=self.name, finish_reason=finish)
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalized 384-dimension MiniLM vector per text."""
        texts = list(texts)
        if not texts:
            return []
        await self._warmed()
        if not self.embedder.loaded:
            await asyncio.to_thread(self.embedder.load)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), _EMBED_CHUNK):
            chunk = texts[start : start + _EMBED_CHUNK]
            vectors.extend(await asyncio.to_thread(self.embedder.embed, chunk))
        return vectors

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the chat model's own tokenizer (read from the GGUF).

        Never raises: with an unusable model file it estimates, and the first
        ``generate`` reports the file problem.
        """
        try:
            return self.chat.count_tokens(text)
        except ConfigurationError:
            return len(text) // 3 + 1

    # ---- Warm-up -------------------------------------------------------------------

    async def warm_up(self, prefix: ModelRequest) -> None:
        """Load what ``prefix.model_class`` needs ahead of the first request; for a chat
        class, also prefill ``prefix`` (the persona) into llama.cpp's slot, whose prompt
        cache then serves the start of every request that begins with it.

        Does nothing with ``CARRIER_LOCAL_WARM_UP=false``. Runs in a worker thread that
        a cancelled caller does not stop: requests and ``aclose`` wait for it.

        Raises:
            ConfigurationError: The model file is missing or unreadable.
            ModelRejectedError: The engine refused the prefix.
        """
        if not self.settings.warm_up:
            return
        if prefix.model_class is ModelClass.EMBEDDING:
            work = asyncio.ensure_future(asyncio.to_thread(self.embedder.load))
        else:
            # one greedy token: what matters is the prompt llama.cpp keeps in its slot
            prefix = prefix.model_copy(update={"max_tokens": 1, "temperature": 0.0})
            work = asyncio.ensure_future(asyncio.to_thread(self._prefill, prefix))
        self._warming.add(work)
        work.add_done_callback(self._warming.discard)
        await asyncio.shield(work)

    def _prefill(self, prefix: ModelRequest) -> None:
        """Load the chat weights, then run ``prefix`` through them (blocking)."""
        self.chat.load()
        prompt, _mode = self.prepare(prefix)
        self.chat.complete(prompt)

    async def prefill(self, prefix: ModelRequest) -> None:
        """Run a room's next prefix (``carrier.lookahead``) through llama.cpp's slot,
        one greedy token, unless the engine is not loaded or is busy with a request.

        The prefix ends with the agent's answer; an empty user turn follows it, so the
        slot holds the answer's end and the start of the next user turn as the next
        request renders them (it then reads its message alone). Does nothing with
        ``CARRIER_LOCAL_WARM_UP=false``. Requests that come meanwhile wait for it.
        """
        if not self.settings.warm_up or not self.chat.loaded or self.chat.busy:
            return
        prompt, _mode = self.prepare(prefix)
        if prompt.messages and prompt.messages[-1]["role"] == "assistant":
            prompt.messages.append({"role": "user", "content": ""})
        prompt.max_tokens, prompt.temperature, prompt.json_schema = 1, 0.0, None
        work = asyncio.ensure_future(asyncio.to_thread(self.chat.complete, prompt, idle=True))
        self._warming.add(work)
        work.add_done_callback(self._warming.discard)
        await asyncio.shield(work)

    async def _warmed(self) -> None:
        """Wait for a warm-up in flight; its failure is the caller's to meet again."""
        if self._warming:
            await asyncio.wait(set(self._warming))

    async def aclose(self) -> None:
        """Free the chat weights and the embedding session."""
        await self._warmed()
        await asyncio.to_thread(self.chat.close)
        await asyncio.to_thread(self.embedder.close)
