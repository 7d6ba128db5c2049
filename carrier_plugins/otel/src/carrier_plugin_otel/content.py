"""Message content as the GenAI conventions' JSON strings (only with content capture).

Pure functions from Carrier's types to the ``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions`` and ``gen_ai.tool.definitions``
JSON schemas: a message is ``{"role", "parts": [...]}``, a part ``{"type": "text",
"content"}`` or ``{"type": "tool_call", "id", "name", "arguments"}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrier.types import ModelRequest, ModelResponse

__all__ = [
    "dumps",
    "input_messages",
    "output_messages",
    "system_instructions",
    "text_messages",
    "tool_definitions",
]


def dumps(value: Any) -> str:
    """Compact JSON; anything not JSON becomes its ``str``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def text_messages(role: str, text: str) -> str:
    """One message of one text part."""
    return dumps([{"role": role, "parts": [_text(text)]}])


def system_instructions(request: ModelRequest) -> str | None:
    return dumps([_text(request.system)]) if request.system else None


def input_messages(request: ModelRequest) -> str:
    messages = []
    for message in request.messages:
        entry: dict[str, Any] = {"role": message.role, "parts": [_text(message.content)]}
        if message.name:
            entry["name"] = message.name
        messages.append(entry)
    return dumps(messages)


def output_messages(response: ModelResponse) -> str:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append(_text(response.text))
    for call in response.action_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    message = {
        "role": "assistant",
        "parts": parts,
        "finish_reason": response.finish_reason
        or ("tool_call" if response.action_calls else "stop"),
    }
    return dumps([message])


def tool_definitions(request: ModelRequest) -> str | None:
    if not request.actions:
        return None
    return dumps(
        [
            {
                "type": "function",
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            }
            for spec in request.actions
        ]
    )
