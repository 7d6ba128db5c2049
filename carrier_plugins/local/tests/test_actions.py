"""The local JSON action protocol: schema, validation, parsing (no model)."""

from __future__ import annotations

from carrier_plugin_local.actions import (
    action_schema,
    bounded_schema,
    parse_action_answer,
    parse_structured,
    validate,
)

from carrier.types import ActionSpec

SEND = ActionSpec(
    name="SEND",
    parameters={
        "type": "object",
        "properties": {"to": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["to"],
    },
)
NOTE = ActionSpec(name="NOTE")


def test_schema_has_one_branch_per_action_and_none() -> None:
    schema = action_schema([SEND, NOTE])
    names = [b["properties"]["action"]["const"] for b in schema["anyOf"]]
    assert names == ["SEND", "NOTE", "NONE"]
    assert "arguments" not in schema["anyOf"][1]["properties"]
    assert schema["anyOf"][0]["properties"]["arguments"]["properties"]["to"]["maxLength"] == 80


def test_parse_valid_call() -> None:
    text, calls, problem = parse_action_answer(
        '{"action": "SEND", "arguments": {"to": "bob", "count": 2}, "text": "Sent."}', [SEND]
    )
    assert (text, problem) == ("Sent.", None)
    assert calls[0].name == "SEND"
    assert calls[0].arguments == {"to": "bob", "count": 2}


def test_invalid_arguments_fall_back_to_a_plain_reply() -> None:
    text, calls, problem = parse_action_answer(
        '{"action": "SEND", "arguments": {"count": "two"}, "text": "Hm."}', [SEND]
    )
    assert text == "Hm."
    assert calls == []
    assert problem is not None
    assert "missing 'to'" in problem


def test_unknown_action_and_none() -> None:
    assert parse_action_answer('{"action": "FLY", "text": "x"}', [SEND])[1] == []
    assert parse_action_answer('{"action": "NONE", "text": "hi"}', [SEND])[:2] == ("hi", [])


def test_truncated_answer_keeps_its_text() -> None:
    text, calls, problem = parse_action_answer('{"action": "NONE", "text": "Hello the', [SEND])
    assert (text, calls) == ("Hello the", [])
    assert problem is not None
    assert parse_action_answer("just words", [SEND])[0] == "just words"


def test_validate_refs_and_enums() -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"$ref": "#/$defs/Color"}},
        "$defs": {"Color": {"enum": ["red", "blue"]}},
    }
    assert validate({"color": "red"}, schema) == []
    assert validate({"color": "green"}, schema) != []
    assert validate(True, {"type": "integer"}) != []


def test_structured_and_bounds() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert parse_structured('{"n": 3}', schema) == ({"n": 3}, None)
    assert parse_structured('{"n": "x"}', schema)[0] is None
    assert parse_structured("{", schema)[0] is None
    assert bounded_schema({"type": "string"}) == {"type": "string", "maxLength": 80}
