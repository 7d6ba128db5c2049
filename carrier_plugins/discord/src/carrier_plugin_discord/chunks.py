"""Splitting an answer into Discord messages (2,000 characters each).

Pieces are cut at the last paragraph break that fits, else a line break, a sentence
end, a space, and never inside a fenced code block when the block can be kept whole:
the cut then falls before the fence. A code block longer than a message is closed at
the cut and reopened (with its language) in the next piece, so every piece renders.
"""

from __future__ import annotations

import re

__all__ = ["LIMIT", "split_text"]

#: Discord's limit for one message's content.
LIMIT = 2000

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)(\S*)", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)\s")


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters (see the module's doc)."""
    if limit < 40:
        raise ValueError("limit must leave room for a code fence")
    pieces: list[str] = []
    rest = text.strip()
    reopen = ""  # the fence line to put back at the start of the next piece
    while rest:
        if reopen:
            rest = f"{reopen}\n{rest}"
        if len(rest) <= limit:
            pieces.append(rest)
            break
        window = rest[:limit]
        opened = _open_fence(window, start=len(reopen))
        cut = _cut(window, outside=opened)
        if opened is not None and cut <= opened[0]:
            reopen = ""  # the cut falls before the block: it starts the next piece
        elif opened is not None:
            # the block does not fit in a message: close it here, reopen it after
            fence = opened[1]
            closing = f"\n{fence}"
            cut = _cut(window[: limit - len(closing)], outside=None, floor=opened[0] + 1)
            piece = rest[:cut].rstrip() + closing
            pieces.append(piece)
            rest = rest[cut:].lstrip("\n")
            reopen = fence + opened[2]
            continue
        else:
            reopen = ""
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    return pieces


def _open_fence(window: str, *, start: int = 0) -> tuple[int, str, str] | None:
    """The fence still open at the end of ``window``: (where its line starts, the
    fence, the language), or ``None`` if every block in it is closed."""
    opened: tuple[int, str, str] | None = None
    for match in _FENCE.finditer(window):
        fence, lang = match.group(1), match.group(2)
        if opened is None:
            opened = (match.start(), fence, lang)
        elif fence.startswith(opened[1][:3]) and len(fence) >= len(opened[1]) and not lang:
            opened = None
    if opened is not None and opened[0] < start:
        return (0, opened[1], opened[2])
    return opened


def _cut(window: str, *, outside: tuple[int, str, str] | None, floor: int | None = None) -> int:
    """Where to cut ``window``: before an open code block when there is one and it
    leaves a piece; else a boundary in the window's second half; else the end."""
    if outside is not None and outside[0] > 0:
        return outside[0]
    low = len(window) // 2 if floor is None else max(floor, len(window) // 2)
    paragraph = window.rfind("\n\n")
    if paragraph > low:
        return paragraph + 2
    line = window.rfind("\n")
    if line > low:
        return line + 1
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > low]
    if ends:
        return ends[-1]
    space = window.rfind(" ")
    if space > low:
        return space + 1
    return len(window) or 1
