"""Judged checks of ``carrier test``: a model decides whether a reply meets a criterion.

A scenario turn may ``expect: {judge: "The reply greets Alice by name"}``. The judge is
a model of its own — ``--judge SPEC``, the scenario's ``judge:`` (a spec, or
``{script: [VERDICT, ...]}`` for a scripted judge in CI), else the live ``--model`` —
asked with the criterion, the user's message and the agent's reply, and answering
``{"pass": true|false, "reason": "..."}`` (or a line starting ``PASS``/``FAIL``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carrier.types import ChatMessage, ModelClass, ModelRequest

if TYPE_CHECKING:
    from carrier.protocols import Model

__all__ = ["JUDGE_SYSTEM", "Verdict", "judge", "judged", "parse_verdict"]

JUDGE_SYSTEM = (
    "You are a strict test judge. You are given a criterion and one turn of a "
    "conversation between a user and an AI agent. Decide whether the agent's reply meets "
    'the criterion. Answer with JSON only: {"pass": true or false, "reason": "one short '
    'sentence"}.'
)

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
    "additionalProperties": False,
}

_WORD = re.compile(r"^\W*(pass|passed|yes|fail|failed|no)\b\W*(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's decision and its reason."""

    passed: bool
    reason: str


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's answer: JSON ``{"pass", "reason"}`` (anywhere in the
    text), or a first word PASS/YES or FAIL/NO followed by the reason.

    Raises:
        ValueError: Neither form is there (the message quotes the answer).
    """
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("pass"), bool):
            return Verdict(bool(data["pass"]), str(data.get("reason") or "").strip())
    match = _WORD.match(text.strip())
    if match:
        word, reason = match.group(1).lower(), match.group(2).strip()
        return Verdict(word in ("pass", "passed", "yes"), reason)
    shown = " ".join(text.split())[:200]
    raise ValueError(
        f'the judge\'s answer is neither {{"pass": ..., "reason": ...}} nor PASS/FAIL: {shown!r}'
    )


async def judge(model: Model, criterion: str, message: str, reply: str) -> Verdict:
    """Ask ``model`` whether ``reply`` (to ``message``) meets ``criterion``.

    Raises:
        ValueError: The answer holds no verdict.
        CarrierError: The model failed (its own error).
    """
    request = ModelRequest(
        model_class=ModelClass.SMALL,
        system=JUDGE_SYSTEM,
        messages=[
            ChatMessage(
                role="user",
                content=(
                    f"Criterion: {criterion}\n\n"
                    f"The user said:\n<message>\n{message}\n</message>\n\n"
                    f"The agent replied:\n<reply>\n{reply}\n</reply>"
                ),
            )
        ],
        response_schema=VERDICT_SCHEMA,
        temperature=0.0,
        max_tokens=200,
    )
    response = await model.generate(request)
    return parse_verdict(response.text)


async def judged(model: Model, criterion: str, message: str, reply: str) -> str | None:
    """What is wrong with ``reply`` by the judge, or ``None`` when it passes; a judge
    that fails or answers nonsense fails the check, saying so."""
    from carrier.errors import CarrierError

    try:
        verdict = await judge(model, criterion, message, reply)
    except ValueError as exc:
        return str(exc)
    except CarrierError as exc:
        return f"the judge model failed: {exc}"
    if verdict.passed:
        return None
    return f"the judge says it does not hold ({criterion!r}): {verdict.reason or 'no reason given'}"
