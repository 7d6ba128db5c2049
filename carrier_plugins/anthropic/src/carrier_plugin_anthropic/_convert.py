"""Pure mapping between Carrier's types and the Anthropic Messages API.

No I/O here: every function takes Carrier or SDK objects and returns the other kind,
so the mapping is tested without a server (``tests/test_convert.py``).

Structured output uses a forced tool: the response schema becomes the only tool,
``tool_choice`` names it, and its ``input`` is the object (``ModelResponse.structured``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carrier.errors import ModelRejectedError
from carrier.model_chain import parse_retry_after
from carrier.types import ActionCall, ActionSpec, ModelRequest, ModelResponse, Usage

if TYPE_CHECKING:
    from anthropic.types import Message, RawMessageStreamEvent

__all__ = [
    "CACHE_BREAKPOINT",
    "StreamAccumulator",
    "from_message",
    "parse_retry_after",
    "redact",
    "structured_tool_name",
    "to_messages",
    "to_params",
    "to_system",
    "to_tools",
]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_KEYLIKE = re.compile(r"\bsk-ant-[A-Za-z0-9_*\-.]{6,}")


def to_system(request: ModelRequest) -> str | None:
    """The system prompt plus any system-role messages (the API takes them apart)."""
    parts = [request.system] if request.system else []
    parts += [m.content for m in request.messages if m.role == "system" and m.content]
    return "\n\n".join(parts) or None


def to_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The chat as alternating ``user``/``assistant`` turns (neighbours merged).

    ``tool`` messages become user text naming the action; the list never starts
    empty (the API needs at least one message).
    """
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        text = message.content
        if message.role == "tool":
            label = f"Result of action {message.name}" if message.name else "Action result"
            text = f"{label}:\n{text}"
        if not text:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})
    if not turns:
        turns.append({"role": "user", "content": "Continue."})
    return turns


def to_tools(actions: list[ActionSpec]) -> list[dict[str, Any]]:
    """Each offered action as a tool whose ``input_schema`` is its JSON schema."""
    tools = []
    for action in actions:
        schema = dict(action.parameters) or {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        tool: dict[str, Any] = {"name": action.name, "input_schema": schema}
        if action.description:
            tool["description"] = action.description
        tools.append(tool)
    return tools


def structured_tool_name(schema: Mapping[str, Any]) -> str:
    """The forced tool's name for a response schema (its title, made wire-safe)."""
    return (_NAME.sub("_", str(schema.get("title") or "respond")) or "respond")[:64]


#: Anthropic's cache breakpoint: the prompt up to here is cached (for five minutes).
CACHE_BREAKPOINT = {"type": "ephemeral"}


def _cached(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": dict(CACHE_BREAKPOINT)}]


def to_params(
    request: ModelRequest, *, model: str, default_max_tokens: int, cache: bool = False
) -> dict[str, Any]:
    """Keyword arguments of ``messages.create`` for ``request``.

    With ``cache``, cache breakpoints mark the end of the system prompt and the end of
    the request's stable prefix (its first ``metadata["prefix_messages"]`` messages,
    ``carrier.layout``), so the next request in the room reads them from the cache.
    """
    messages = to_messages(request)
    prefix = request.metadata.get("prefix_messages")
    head = request.messages[:prefix] if isinstance(prefix, int) else []
    if cache and head and any(m.content and m.role != "system" for m in head):
        stable = to_messages(request.model_copy(update={"messages": head}))
        marked = len(stable) - 1
        if messages[marked]["content"] == stable[marked]["content"]:
            messages[marked]["content"] = _cached(stable[marked]["content"])
        else:  # the first per-message turn was merged into the last stable one
            rest = messages[marked]["content"][len(stable[marked]["content"]) + 2 :]
            messages[marked]["content"] = [
                *_cached(stable[marked]["content"]),
                {"type": "text", "text": rest},
            ]
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    system = to_system(request)
    if system:
        params["system"] = _cached(system) if cache else system
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.response_schema is not None:
        schema = dict(request.response_schema)
        schema.setdefault("type", "object")
        name = structured_tool_name(schema)
        params["tools"] = [
            {"name": name, "description": "Give the answer in this shape.", "input_schema": schema}
        ]
        params["tool_choice"] = {"type": "tool", "name": name}
    elif request.actions:
        params["tools"] = to_tools(request.actions)
        params["tool_choice"] = {"type": "auto"}
    return params


def _finish(
    *,
    name: str,
    request: ModelRequest,
    texts: list[str],
    thoughts: list[str],
    calls: list[ActionCall],
    usage: Usage,
    model: str,
    stop_reason: str | None,
) -> ModelResponse:
    if stop_reason == "refusal":
        raise ModelRejectedError(
            f"{name} declined to answer (stop_reason 'refusal'); rephrase the request."
        )
    text = "".join(texts)
    structured = None
    if request.response_schema is not None:
        forced = structured_tool_name(request.response_schema)
        for call in calls:
            if call.name == forced:
                structured = call.arguments
        calls = [c for c in calls if c.name != forced]
        if structured is not None and not text:
            text = json.dumps(structured)
    return ModelResponse(
        text=text,
        thought="".join(thoughts) or None,
        action_calls=calls,
        usage=usage,
        model=model or name,
        finish_reason=stop_reason,
        structured=structured,
    )


def from_message(message: Message, *, name: str, request: ModelRequest) -> ModelResponse:
    """A ``ModelResponse`` from a Messages API ``message``."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ActionCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":
            thoughts.append(block.thinking)
        elif block.type == "tool_use":
            if not isinstance(block.input, dict):
                raise ModelRejectedError(
                    f"{name} called tool {block.name!r} with non-object input; unusable."
                )
            calls.append(ActionCall(name=block.name, arguments=dict(block.input), id=block.id))
    usage = usage_of(message.usage)
    return _finish(
        name=name,
        request=request,
        texts=texts,
        thoughts=thoughts,
        calls=calls,
        usage=usage,
        model=message.model,
        stop_reason=message.stop_reason,
    )


@dataclass
class _Block:
    type: str
    id: str | None = None
    name: str = ""
    parts: list[str] = field(default_factory=list)


@dataclass
class StreamAccumulator:
    """Folds streamed events (message_start … message_stop) into the final response.

    ``add(event)`` returns the event's text delta ("" if none).
    """

    name: str
    request: ModelRequest
    blocks: dict[int, _Block] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop_reason: str | None = None
    stopped: bool = False

    def add(self, event: RawMessageStreamEvent) -> str:
        """Take one event; return its text delta."""
        if event.type == "message_start":
            self.model = event.message.model
            self.usage = usage_of(event.message.usage)
        elif event.type == "content_block_start":
            block = event.content_block
            self.blocks[event.index] = _Block(
                type=block.type,
                id=getattr(block, "id", None),
                name=getattr(block, "name", ""),
                parts=[block.text] if block.type == "text" and block.text else [],
            )
            if block.type == "text" and block.text:
                return block.text
        elif event.type == "content_block_delta":
            current = self.blocks.setdefault(event.index, _Block(type="text"))
            delta = event.delta
            if delta.type == "text_delta":
                current.parts.append(delta.text)
                return delta.text
            if delta.type == "input_json_delta":
                current.parts.append(delta.partial_json)
            elif delta.type == "thinking_delta":
                current.parts.append(delta.thinking)
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # message_delta's usage is cumulative; fields it leaves out stay as they were
            self.usage = usage_of(event.usage, self.usage)
        elif event.type == "message_stop":
            self.stopped = True
        return ""

    def response(self) -> ModelResponse:
        """The whole answer; ``ModelRejectedError`` if the stream ended early."""
        if not self.stopped:
            raise ModelRejectedError(f"{self.name}'s stream ended before message_stop.")
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ActionCall] = []
        for _, block in sorted(self.blocks.items()):
            joined = "".join(block.parts)
            if block.type == "text":
                texts.append(joined)
            elif block.type == "thinking":
                thoughts.append(joined)
            elif block.type == "tool_use":
                calls.append(
                    ActionCall(
                        name=block.name, arguments=_json_object(block.name, joined), id=block.id
                    )
                )
        return _finish(
            name=self.name,
            request=self.request,
            texts=texts,
            thoughts=thoughts,
            calls=calls,
            usage=self.usage,
            model=self.model,
            stop_reason=self.stop_reason,
        )


def _json_object(name: str, raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelRejectedError(
            f"The model streamed input for tool {name!r} that is not JSON ({exc.msg})."
        ) from exc
    if not isinstance(value, dict):
        raise ModelRejectedError(f"The model streamed non-object input for tool {name!r}.")
    return value


def redact(text: str, secret: str | None) -> str:
    """``text`` with the key, and anything that looks like an Anthropic key, masked."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def usage_of(usage: Any, before: Usage | None = None) -> Usage:
    """Carrier's usage from Anthropic's (a message's, or a stream's cumulative delta,
    over ``before``). Anthropic's ``input_tokens`` leaves out the cached part; Carrier's
    counts the whole prompt."""
    before = before or Usage()

    def field_of(name: str, previous: int | None) -> int | None:
        value = getattr(usage, name, None)
        return int(value) if value is not None else previous

    read = field_of("cache_read_input_tokens", before.cache_read_input_tokens)
    written = field_of("cache_creation_input_tokens", before.cache_write_input_tokens)
    uncached = getattr(usage, "input_tokens", None)
    total = int(uncached) + (read or 0) + (written or 0) if uncached else before.input_tokens
    return Usage(
        input_tokens=total,
        output_tokens=field_of("output_tokens", before.output_tokens) or 0,
        cache_read_input_tokens=read,
        cache_write_input_tokens=written,
    )
