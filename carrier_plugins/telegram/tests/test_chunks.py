"""Splitting answers at Telegram's 4,096-unit limit."""

from __future__ import annotations

from carrier_plugin_telegram.chunks import split_text, utf16_len


def test_short_text_is_one_piece() -> None:
    assert split_text("  hello  ") == ["hello"]
    assert split_text("   ") == []


def test_paragraphs_win_over_sentences() -> None:
    text = "a" * 60 + ". " + "b" * 30 + "\n\n" + "c" * 50
    assert split_text(text, limit=100) == ["a" * 60 + ". " + "b" * 30, "c" * 50]


def test_sentences_then_words() -> None:
    text = "One sentence here. " * 10
    pieces = split_text(text, limit=50)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces) == text.strip()
    words = "word " * 40
    assert all(len(p) <= 50 and not p.endswith("wor") for p in split_text(words, limit=50))


def test_a_long_word_is_cut_at_the_limit() -> None:
    assert split_text("x" * 250, limit=100) == ["x" * 100, "x" * 100, "x" * 50]


def test_emoji_count_twice_and_are_never_split() -> None:
    text = "😀" * 3000  # 6,000 UTF-16 units
    pieces = split_text(text)
    assert [utf16_len(p) for p in pieces] == [4096, 6000 - 4096]
    assert "".join(pieces) == text
    for piece in pieces:
        piece.encode("utf-16-le")  # a lone surrogate would not encode
