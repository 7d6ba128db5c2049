"""Model specs and the Retry-After helper plugins use when translating 429/503."""

from __future__ import annotations

from carrier.model_chain import parse_model_spec, parse_retry_after


def test_specs_with_fallbacks() -> None:
    assert parse_model_spec("anthropic:claude-x -> openai:gpt-4.1-mini → local") == [
        ("anthropic", "claude-x"),
        ("openai", "gpt-4.1-mini"),
        ("local", None),
    ]
    assert parse_model_spec("echo") == [("echo", None)]
    assert parse_model_spec("local:/models/a:b.gguf") == [("local", "/models/a:b.gguf")]


def test_retry_after_in_milliseconds_seconds_and_http_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    date = "Wed, 21 Oct 2015 07:28:30 GMT"  # 1445412510
    assert parse_retry_after({"retry-after": date}, now=1445412500.0) == 10.0
    assert parse_retry_after({"retry-after": date}, now=1445412600.0) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after(None) is None
