"""Response bodies in Anthropic's documented formats, for ``carrier.testing``'s
``FakeServer`` (re-exported here) to answer the real SDK with."""

from __future__ import annotations

from typing import Any

from carrier.testing.http_fake import FakeServer, Recorded, Reply

__all__ = ["FakeServer", "Recorded", "Reply"]


# ---- Anthropic-documented bodies ---------------------------------------------------

MODEL = "claude-sonnet-4-5-20250929"


def message(
    text: str | None = "Hello!",
    *,
    tool_use: list[tuple[str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 9,
) -> dict[str, Any]:
    """A Messages API ``message``: optional text block, then ``tool_use`` blocks."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_use:
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def text_stream(*pieces: str, input_tokens: int = 25, output_tokens: int = 15) -> list[Any]:
    """The documented SSE sequence of a streamed text answer."""
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message(None, input_tokens=input_tokens, output_tokens=1),
                    "stop_reason": None,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
        for piece in pieces
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def tool_stream(
    name: str, json_parts: list[str], call_id: str = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
) -> list[Any]:
    """The documented SSE sequence of a text block followed by a streamed ``tool_use``."""
    events = text_stream("Let me check.")[:-3]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": part},
            },
        )
        for part in json_parts
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 89},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def error_body(type_: str, message_: str) -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": type_, "message": message_}}
