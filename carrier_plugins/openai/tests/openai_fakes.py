"""Response bodies in OpenAI's documented formats, for ``carrier.testing``'s
``FakeServer`` (re-exported here) to answer the real SDK with."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from carrier.testing.http_fake import FakeServer, Recorded, Reply

__all__ = ["LLAMA_KEY", "FakeServer", "Recorded", "Reply", "openai_rules"]

#: The key the local llama.cpp server demands; tests also check it never leaks.
LLAMA_KEY = "sk-local-llama-key-0123456789"


# ---- OpenAI-documented bodies ------------------------------------------------------


def completion(
    text: str | None = "Hello!",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    model: str = "gpt-4.1-mini-2025-04-14",
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
) -> dict[str, Any]:
    """A ``chat.completion`` object as the Chat Completions API documents it."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def tool_call(name: str, arguments: str, call_id: str = "call_abc123") -> dict[str, Any]:
    """One entry of ``message.tool_calls``; ``arguments`` is a JSON string."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; with ``usage`` and no delta it is the last one."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": choices,
        "usage": usage,
    }


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ---- OpenAI's request rules --------------------------------------------------------

#: Reasoning models: OpenAI answers 400 to a request of theirs that carries ``stop``.
REASONING_MODELS = re.compile(r"^(?:o\d|gpt-5)")


def openai_rules(
    answer: Callable[[Recorded], Reply], *, no_stop: re.Pattern[str] = REASONING_MODELS
) -> Callable[[Recorded], Reply]:
    """A handler that answers a chat request as OpenAI does when it breaks the API's
    rules (HTTP 400 with OpenAI's error body), and with ``answer`` otherwise.

    Enforced: at most 4 stop sequences; no ``stop`` at all, and no ``temperature``
    but the default 1, for models matching ``no_stop`` (OpenAI's reasoning models
    unless told otherwise).
    """

    def handler(request: Recorded) -> Reply:
        body = request.json or {}
        stop = body.get("stop")
        temperature = body.get("temperature", 1)
        if temperature != 1 and no_stop.match(str(body.get("model", ""))):
            return Reply(
                status=400,
                json=error_body(
                    "Unsupported value: 'temperature' does not support "
                    f"{temperature} with this model. Only the default (1) value is supported.",
                    "invalid_request_error",
                    "unsupported_value",
                    "temperature",
                ),
            )
        if stop is not None and no_stop.match(str(body.get("model", ""))):
            return Reply(
                status=400,
                json=error_body(
                    "Unsupported parameter: 'stop' is not supported with this model.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    "stop",
                ),
            )
        if isinstance(stop, list) and len(stop) > 4:
            return Reply(
                status=400,
                json=error_body(
                    f"Invalid 'stop': array too long. Expected an array with maximum "
                    f"length 4, but got an array with length {len(stop)} instead.",
                    "invalid_request_error",
                    "array_above_max_length",
                    "stop",
                ),
            )
        return answer(request)

    return handler
