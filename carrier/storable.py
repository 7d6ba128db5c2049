"""Characters no store can keep: NUL (PostgreSQL refuses it in text and JSON) and lone
surrogates (UTF-8 cannot encode them; serializing a memory that holds one fails).

A sender's message holding one is refused (``AgentRuntime.refuse_unstorable``); a
model's answer is cleaned instead (:func:`storable_response`), since nobody can be
asked to send it again: NUL characters are dropped, each lone surrogate becomes U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

from carrier.types import ModelResponse

__all__ = ["UNSTORABLE", "storable", "storable_response"]

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _replacement(found: re.Match[str]) -> str:
    return "" if found.group() == "\x00" else "\ufffd"


def storable(text: str) -> str:
    """``text`` without NUL characters, each lone surrogate replaced by U+FFFD."""
    if UNSTORABLE.search(text) is None:
        return text
    return UNSTORABLE.sub(_replacement, text)


def _holds_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_unstorable(k) or _holds_unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_unstorable(v) for v in value)
    return False


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


def storable_response(response: ModelResponse) -> ModelResponse:
    """``response`` itself when every text in it (answer, thought, action arguments,
    structured value) can be stored, else a copy with those texts cleaned."""
    calls = [call.arguments for call in response.action_calls]
    parts = (response.text, response.thought, calls, response.structured)
    if not _holds_unstorable(parts):
        return response
    return response.model_copy(
        update={
            "text": storable(response.text),
            "thought": None if response.thought is None else storable(response.thought),
            "action_calls": [
                call.model_copy(update={"arguments": _cleaned(call.arguments)})
                for call in response.action_calls
            ],
            "structured": _cleaned(response.structured),
        }
    )
