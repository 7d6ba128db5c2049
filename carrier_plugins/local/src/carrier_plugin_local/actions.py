"""The JSON protocol the small local model answers offered actions with.

A 135M model copes best with one flat object per answer, so instead of the
kernel's ``{"text", "actions": [...]}`` the local model writes::

    {"action": "NAME", "arguments": {...}, "text": "reply to the user"}

with ``"action": "NONE"`` for a plain reply. The grammar (built from
:func:`action_schema`) lets it name only offered actions, each with arguments of
its own schema, so the output always parses; :func:`parse_action_answer` still
never raises: arguments that fail :func:`validate` and anything unreadable
become a plain reply.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Any

from carrier.prompts import NO_ACTION
from carrier.types import ActionCall, ActionSpec

__all__ = [
    "action_instructions",
    "action_schema",
    "bounded_schema",
    "parse_action_answer",
    "parse_structured",
    "validate",
]

#: Longest reply text, in characters, so an answer fits in its token budget. Bounds
#: also keep the grammar small: llama.cpp expands ``{0,n}`` repetitions into rules,
#: and sampling slows down markedly as ``n`` grows (300 characters: ~3x slower).
TEXT_MAX_CHARS = 200
#: Longest string argument, in characters, when the action's schema sets none.
ARGUMENT_MAX_CHARS = 80
_TEXT_FIELD = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)', re.DOTALL)


def bounded_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` whose strings without ``maxLength`` get one, so that a
    constrained answer cannot run past its token budget."""
    bounded = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
                node["maxLength"] = ARGUMENT_MAX_CHARS
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(bounded)
    return bounded


def _object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in parameters.items() if k not in ("$defs", "definitions", "title")}
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return params


def action_schema(actions: Sequence[ActionSpec]) -> dict[str, Any]:
    """JSON schema of an answer: one branch per offered action, plus ``NONE``."""
    defs: dict[str, Any] = {}
    text = {"type": "string", "maxLength": TEXT_MAX_CHARS}
    branches: list[dict[str, Any]] = []
    for spec in actions:
        params = bounded_schema(dict(spec.parameters))
        defs.update(params.get("$defs", {}))
        arguments = _object_schema(params)
        properties: dict[str, Any] = {"action": {"const": spec.name}}
        required = ["action"]
        if arguments["properties"]:
            properties["arguments"] = arguments
            required.append("arguments")
        properties["text"] = text
        required.append("text")
        branches.append(
            {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        )
    branches.append(
        {
            "type": "object",
            "properties": {"action": {"const": NO_ACTION}, "text": text},
            "required": ["action", "text"],
            "additionalProperties": False,
        }
    )
    schema: dict[str, Any] = {"anyOf": branches}
    if defs:
        schema["$defs"] = defs
    return schema


def action_instructions(actions: Sequence[ActionSpec]) -> str:
    """The paragraph appended to the system prompt that lists the actions."""
    lines = ["You can take one of these actions:"]
    for spec in actions:
        properties = _object_schema(dict(spec.parameters))["properties"]
        args = ", ".join(
            f"{name} ({prop.get('type', 'value')})" if isinstance(prop, dict) else name
            for name, prop in properties.items()
        )
        line = f"- {spec.name}: {spec.description or spec.name.replace('_', ' ').lower()}"
        if args:
            line += f" Arguments: {args}."
        lines.append(line)
    lines.append(f"- {NO_ACTION}: no action, just reply.")
    lines.append(
        'Answer with one JSON object: {"action": the action name, "arguments": its '
        'arguments, "text": your reply to the user}. Use "NONE" when no action fits.'
    )
    return "\n".join(lines)


# ---- Reading answers --------------------------------------------------------------


def _matches_type(value: Any, expected: str) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "null":
        return value is None
    return True


def validate(value: Any, schema: Any, defs: dict[str, Any] | None = None) -> list[str]:
    """Problems of ``value`` against the JSON-schema subset actions use; ``[]`` if valid.

    Checks ``$ref`` (local), ``type``, ``enum``, ``const``, ``anyOf``/``oneOf``,
    ``properties``/``required``/``additionalProperties: false``, ``items`` and
    string/array length limits. Other keywords are accepted as written.
    """
    if not isinstance(schema, dict):
        return []
    defs = defs if defs is not None else schema.get("$defs", {})
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return validate(value, defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        if any(not validate(value, option, defs) for option in options):
            return []
        return [f"{value!r} matches none of the allowed shapes"]
    expected = schema.get("type")
    kinds = expected if isinstance(expected, list) else [expected] if expected else []
    if kinds and not any(_matches_type(value, kind) for kind in kinds):
        return [f"expected {' or '.join(kinds)}, found {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{value!r} is not one of {schema['enum']!r}"]
    if "const" in schema and value != schema["const"]:
        return [f"{value!r} is not {schema['const']!r}"]
    problems: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                problems += [f"{key}: {p}" for p in validate(item, properties[key], defs)]
            elif schema.get("additionalProperties") is False:
                problems.append(f"unexpected {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += [f"[{index}]: {p}" for p in validate(item, schema["items"], defs)]
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        problems.append(f"longer than {schema['maxLength']} characters")
    return problems


def _salvage_text(raw: str) -> str:
    """The reply text of a truncated answer, or the raw text if none can be found."""
    match = _TEXT_FIELD.search(raw)
    if not match:
        return "" if raw.lstrip().startswith("{") else raw.strip()
    try:
        return str(json.loads(f'"{match.group(1)}"'))
    except json.JSONDecodeError:
        return match.group(1)


def parse_action_answer(
    raw: str, actions: Sequence[ActionSpec]
) -> tuple[str, list[ActionCall], str | None]:
    """Read an answer written under :func:`action_schema`; never raises.

    Returns:
        ``(text, action_calls, problem)``: an unknown action, invalid arguments
        or unreadable JSON give no call and a ``problem`` describing why.
    """
    try:
        answer = json.loads(raw)
    except json.JSONDecodeError:
        return _salvage_text(raw), [], "the answer is not complete JSON"
    if not isinstance(answer, dict):
        return raw.strip(), [], "the answer is not a JSON object"
    text = answer.get("text")
    text = text.strip() if isinstance(text, str) else ""
    name = answer.get("action")
    if not isinstance(name, str) or name.upper() == NO_ACTION:
        return text, [], None
    spec = next((s for s in actions if s.name == name), None)
    if spec is None:
        return text, [], f"{name!r} is not an offered action"
    arguments = answer.get("arguments", {})
    schema = _object_schema(dict(spec.parameters))
    problems = validate(arguments, schema, spec.parameters.get("$defs"))
    if problems:
        return text, [], f"arguments of {name!r} are invalid: {'; '.join(problems)}"
    return text, [ActionCall(name=name, arguments=arguments)], None


def parse_structured(raw: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The object of a ``response_schema`` answer, or ``(None, problem)``; never raises."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None, "the answer is not complete JSON"
    problems = validate(value, schema)
    if problems:
        return None, "; ".join(problems)
    return value, None
