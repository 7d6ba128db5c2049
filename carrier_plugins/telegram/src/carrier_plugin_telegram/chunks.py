"""Splitting an answer into Telegram messages (4,096 UTF-16 code units each).

Telegram counts a message's length in UTF-16 code units; a Python ``str`` is indexed by
code points, so cutting at any index never splits a surrogate pair, and the length is
measured in UTF-16 units so that a text full of emoji still fits.
"""

from __future__ import annotations

import re

__all__ = ["LIMIT", "split_text", "utf16_len"]

#: Telegram's limit for one message's text.
LIMIT = 4096

_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)\s")


def utf16_len(text: str) -> int:
    """Length of ``text`` as Telegram counts it."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 units, cut at the last paragraph
    break that fits, else the last sentence end, else the last whitespace, else (one
    very long word) at the limit. Pieces are stripped; empty ones are dropped."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            pieces.append(rest)
            break
        window = _fitting(rest, limit)
        cut = _cut(window)
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    return pieces


def _fitting(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units."""
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text


def _cut(window: str) -> int:
    """Where to cut ``window`` (the text that fits): a boundary in its second half if
    there is one, so that no piece is needlessly short."""
    floor = len(window) // 2
    paragraph = window.rfind("\n\n")
    if paragraph > floor:
        return paragraph + 2
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    line = window.rfind("\n")
    best = max([e for e in ends if e > floor] + ([line + 1] if line > floor else []), default=0)
    if best:
        return best
    space = max(window.rfind(" "), window.rfind("\t"))
    if space > floor:
        return space + 1
    return len(window) or 1
