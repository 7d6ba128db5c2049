"""Splitting answers at 2,000 characters, never inside a code fence."""

from __future__ import annotations

import re

from carrier_plugin_discord.chunks import LIMIT, split_text

PROSE = ("The quick brown fox jumps over the lazy dog. " * 40).strip()
CODE = "```python\n" + "\n".join(f"value_{i} = compute({i})  # step" for i in range(30)) + "\n```"


def _fences_balanced(piece: str) -> bool:
    return len(re.findall(r"^```", piece, re.MULTILINE)) % 2 == 0


def test_a_short_answer_is_one_piece() -> None:
    assert split_text("hello") == ["hello"]


def test_a_5000_character_answer_keeps_its_code_block_whole() -> None:
    text = f"{PROSE}\n\n{CODE}\n\n{PROSE}\n\n{PROSE}"
    assert len(text) > 5000
    pieces = split_text(text)
    assert all(len(p) <= LIMIT for p in pieces)
    assert all(_fences_balanced(p) for p in pieces)
    assert sum(CODE in p for p in pieces) == 1  # the block is in one piece, unbroken
    assert " ".join(pieces).split() == text.split()  # nothing lost


def test_a_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "```js\n" + "\n".join(f"let x{i} = {i};" for i in range(400)) + "\n```"
    pieces = split_text(f"Here it is:\n\n{code}")
    assert len(pieces) > 2
    assert all(len(p) <= LIMIT for p in pieces)
    assert all(_fences_balanced(p) for p in pieces)
    assert all(p.startswith("```js") for p in pieces[1:])
    lines = [line for p in pieces for line in p.splitlines() if line.startswith("let ")]
    assert lines == [f"let x{i} = {i};" for i in range(400)]


def test_prose_is_cut_at_sentence_or_paragraph_ends() -> None:
    pieces = split_text(PROSE * 3)
    assert all(p.endswith(".") for p in pieces)
