"""Pure mapping between Carrier's types and the OpenAI Chat Completions wire format.

No I/O here: every function takes Carrier or SDK objects and returns the other kind,
so the mapping is tested without a server (``tests/test_convert.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carrier.errors import ModelRejectedError
from carrier.model_chain import parse_retry_after
from carrier.types import ActionCall, ActionSpec, ModelRequest, ModelResponse, Usage

if TYPE_CHECKING:
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = [
    "MAX_STOP_SEQUENCES",
    "NO_STOP_MODELS",
    "StreamAccumulator",
    "choose_stops",
    "from_completion",
    "parse_retry_after",
    "redact",
    "rejects_stop",
    "to_messages",
    "to_params",
    "to_response_format",
    "to_tools",
]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
#: Most stop sequences OpenAI's Chat Completions API accepts (more is an HTTP 400).
MAX_STOP_SEQUENCES = 4
#: Model ids (regular expressions, searched case-insensitively) of OpenAI's reasoning
#: models, which reject ``stop`` with an HTTP 400: the o-series and gpt-5. A prefix such
#: as ``openai/`` (OpenRouter) is allowed. ``CARRIER_OPENAI_NO_STOP_MODELS`` adds more.
NO_STOP_MODELS = (r"(?:^|/)o\d", r"(?:^|/)gpt-5")
#: A stop sequence the kernel adds per participant: a new line, the name, a colon.
_SPEAKER_STOP = re.compile(r"\n(?P<name>[^\n:]+):")
#: How a group-room turn starts (``"Ada: hello"``).
_SPEAKER_PREFIX = re.compile(r"(?P<name>[^\n:]+):")
#: How the kernel's persona names the agent (``character_system_prompt``).
_PERSONA = r"(?:\bYou are|\bAbout) {name}(?![\w-])"
#: OpenAI echoes a masked key in 401 bodies ("sk-abc***xyz"); never pass it on.
_KEYLIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*\-.]{6,}")


def _wire_name(name: str, *, default: str) -> str:
    cleaned = _NAME.sub("_", name)[:64]
    return cleaned or default


def to_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The system prompt, then the chat, as Chat Completions messages.

    ``tool`` messages carry no ``tool_call_id`` in Carrier, so they are sent as user
    messages naming the action whose result they hold.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        if message.role == "tool":
            label = f"Result of action {message.name}" if message.name else "Action result"
            messages.append({"role": "user", "content": f"{label}:\n{message.content}"})
            continue
        role = message.role if message.role in ("system", "user", "assistant") else "user"
        item: dict[str, Any] = {"role": role, "content": message.content}
        if message.name and role != "system":
            item["name"] = _wire_name(message.name, default="user")
        messages.append(item)
    return messages


def to_tools(actions: list[ActionSpec]) -> list[dict[str, Any]]:
    """Each offered action as a ``function`` tool whose parameters are its JSON schema."""
    tools = []
    for action in actions:
        parameters = dict(action.parameters) or {"type": "object", "properties": {}}
        parameters.setdefault("type", "object")
        function: dict[str, Any] = {"name": action.name, "parameters": parameters}
        if action.description:
            function["description"] = action.description
        tools.append({"type": "function", "function": function})
    return tools


def to_response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A ``json_schema`` response format (not strict: pydantic schemas are not strict-ready)."""
    name = _wire_name(str(schema.get("title") or "response"), default="response")
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": dict(schema), "strict": False},
    }


def rejects_stop(model: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    """Whether ``model`` is one of those that reject ``stop`` (any pattern matches)."""
    return any(pattern.search(model) for pattern in patterns)


def choose_stops(request: ModelRequest, *, limit: int = MAX_STOP_SEQUENCES) -> list[str]:
    """At most ``limit`` of the request's stop sequences, the most useful ones.

    The kernel adds one ``"\\nName:"`` per participant (sorted by name), which in a
    group room is more than OpenAI accepts. Kept first, in this order: stop sequences
    of another form (a caller asked for them), the agent's own name (the one the
    system prompt introduces with "You are Name" or "About Name:"), then the people
    who spoke in the chat, most recent first, then the rest in the request's order.
    The kept ones are returned in the request's order, so the result is deterministic.
    """
    stops = list(dict.fromkeys(stop for stop in request.stop if stop))
    if len(stops) <= limit:
        return stops
    recent: dict[str, int] = {}
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        prefix = _SPEAKER_PREFIX.match(message.content)
        name = message.name or (prefix.group("name").strip() if prefix else None)
        if name:
            recent.setdefault(name, len(recent))
    system = request.system or ""

    def rank(position: int) -> tuple[int, int]:
        speaker = _SPEAKER_STOP.fullmatch(stops[position])
        if speaker is None:
            return (0, position)
        name = speaker.group("name")
        if re.search(_PERSONA.format(name=re.escape(name)), system):
            return (1, position)
        if name in recent:
            return (2, recent[name])
        return (3, position)

    kept = sorted(sorted(range(len(stops)), key=rank)[:limit])
    return [stops[position] for position in kept]


def to_params(
    request: ModelRequest,
    *,
    model: str,
    default_max_tokens: int,
    max_tokens_key: str = "max_tokens",
    max_stop: int = MAX_STOP_SEQUENCES,
    no_stop_models: Sequence[re.Pattern[str]] = (),
) -> dict[str, Any]:
    """Keyword arguments of ``chat.completions.create`` for ``request``.

    Args:
        request: The Carrier request.
        model: The model id to ask for.
        default_max_tokens: Answer limit when the request sets none.
        max_tokens_key: ``max_completion_tokens`` for OpenAI itself, ``max_tokens`` for
            compatible servers (some know only the older name).
        max_stop: Most stop sequences sent; :func:`choose_stops` picks which.
        no_stop_models: Patterns of model ids that reject ``stop`` and any
            ``temperature`` but the default (reasoning models); for those both are left
            out (see :data:`NO_STOP_MODELS`).
    """
    params: dict[str, Any] = {
        "model": model,
        "messages": to_messages(request),
        max_tokens_key: request.max_tokens or default_max_tokens,
    }
    reasoning = rejects_stop(model, no_stop_models)
    if request.temperature is not None and not reasoning:  # reasoning models: default only
        params["temperature"] = request.temperature
    stop = [] if reasoning else choose_stops(request, limit=max_stop)
    if stop:
        params["stop"] = stop
    if request.seed is not None:
        params["seed"] = request.seed
    if request.actions:
        params["tools"] = to_tools(request.actions)
        params["tool_choice"] = "auto"
    if request.response_schema is not None:
        params["response_format"] = to_response_format(request.response_schema)
    return params


def _arguments(name: str, raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelRejectedError(
            f"The model called action {name!r} with arguments that are not JSON "
            f"({exc.msg} at position {exc.pos}); the response cannot be used."
        ) from exc
    if not isinstance(value, dict):
        raise ModelRejectedError(
            f"The model called action {name!r} with {type(value).__name__} arguments; "
            f"a JSON object was expected."
        )
    return value


def _structured(text: str) -> Any:
    """The JSON object in ``text``, or ``None`` (the kernel then falls back)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=prompt.cached_tokens if prompt is not None else None,
        reasoning_output_tokens=completion.reasoning_tokens if completion is not None else None,
    )


def _check_finish(finish_reason: str | None, model: str) -> None:
    if finish_reason == "content_filter":
        raise ModelRejectedError(
            f"{model} withheld its answer (finish_reason 'content_filter'); "
            f"rephrase the request or use another model."
        )


def from_completion(
    completion: ChatCompletion, *, name: str, request: ModelRequest
) -> ModelResponse:
    """A ``ModelResponse`` from a chat completion: text, action calls, usage."""
    if not completion.choices:
        raise ModelRejectedError(f"{name} answered with no choices; the response is unusable.")
    choice = completion.choices[0]
    _check_finish(choice.finish_reason, name)
    message = choice.message
    if message.refusal:
        raise ModelRejectedError(f"{name} refused the request: {message.refusal}")
    calls = [
        ActionCall(
            name=call.function.name,
            arguments=_arguments(call.function.name, call.function.arguments),
            id=call.id,
        )
        for call in message.tool_calls or []
        if call.type == "function"
    ]
    text = message.content or ""
    return ModelResponse(
        text=text,
        action_calls=calls,
        usage=_usage(completion.usage),
        model=completion.model or name,
        finish_reason=choice.finish_reason,
        structured=_structured(text) if request.response_schema is not None else None,
    )


@dataclass
class _ToolCallParts:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAccumulator:
    """Folds streamed chunks into the final ``ModelResponse``.

    ``add(chunk)`` returns the chunk's text delta ("" if none); tool-call fragments are
    joined by index; the usage comes with the last chunk (``include_usage``).
    """

    name: str
    request: ModelRequest
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; return its text delta."""
        if chunk.model and not self.model:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        delta_text = ""
        for choice in chunk.choices[:1] if chunk.choices else ():
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta.refusal:
                raise ModelRejectedError(f"{self.name} refused the request: {delta.refusal}")
            if delta.content:
                delta_text = delta.content
                self.text.append(delta_text)
            for part in delta.tool_calls or ():
                parts = self.tool_calls.setdefault(part.index, _ToolCallParts())
                if part.id:
                    parts.id = part.id
                if part.function is not None:
                    if part.function.name:
                        parts.name += part.function.name
                    if part.function.arguments:
                        parts.arguments.append(part.function.arguments)
        return delta_text

    def response(self) -> ModelResponse:
        """The whole answer, once the stream has ended."""
        _check_finish(self.finish_reason, self.name)
        text = "".join(self.text)
        calls = [
            ActionCall(name=p.name, arguments=_arguments(p.name, "".join(p.arguments)), id=p.id)
            for _, p in sorted(self.tool_calls.items())
        ]
        return ModelResponse(
            text=text,
            action_calls=calls,
            usage=self.usage,
            model=self.model or self.name,
            finish_reason=self.finish_reason,
            structured=_structured(text) if self.request.response_schema is not None else None,
        )


def redact(text: str, secret: str | None) -> str:
    """``text`` with the key, and anything that looks like a key, masked."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)
