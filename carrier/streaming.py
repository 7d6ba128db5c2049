"""What a client receives of a streamed answer: the text the stored reply will hold.

``SpeakerLabelFilter`` drops the leading speaker label ("Nova: ") that small models copy
from example conversations (the stored reply is without it); ``after_break`` puts a
further step's text after a blank line.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["SpeakerLabelFilter", "after_break", "speaker_label"]

TextCallback = Callable[[str], Awaitable[None]]


def speaker_label(names: Sequence[str]) -> re.Pattern[str]:
    """``"Nova: hello"`` → the ``"Nova: "`` part, for any of ``names``, any case."""
    alternatives = "|".join(re.escape(n) for n in names if n)
    return re.compile(rf"^\s*(?:{alternatives})\s*:\s*", re.IGNORECASE)


class SpeakerLabelFilter:
    """Passes streamed text on without a leading speaker label of ``names``.

    Text is held back only while it could still be the start of a label, so a client
    waits a few characters at most.
    """

    def __init__(self, names: Sequence[str], on_text: TextCallback) -> None:
        self._names = [n for n in names if n]
        self._label = speaker_label(self._names)
        self._on_text = on_text
        self._held = ""
        self._decided = not self._names

    async def send(self, delta: str) -> None:
        """Take the next delta of the stream."""
        if self._decided:
            await self._on_text(delta)
            return
        self._held += delta
        if not self._held.strip():
            return
        match = self._label.match(self._held)
        if match is not None and match.end() < len(self._held):
            await self._release(self._held[match.end() :])
        elif match is None and not self._could_be_label(self._held):
            await self._release(self._held)

    def _could_be_label(self, text: str) -> bool:
        squeezed = text.strip().lower().replace(" ", "")
        return any(f"{name.lower()}:".startswith(squeezed) for name in self._names)

    async def _release(self, text: str) -> None:
        self._decided = True
        text = text.lstrip()
        if text:
            await self._on_text(text)

    async def flush(self) -> None:
        """The stream ended: release what is held (an answer shorter than a label)."""
        if not self._decided:
            match = self._label.match(self._held)
            await self._release(self._held[match.end() :] if match else self._held)


def after_break(on_text: TextCallback | None, sent: Sequence[Any]) -> TextCallback | None:
    """``on_text`` for a further step: its first delta follows a blank line when text
    was already sent (``sent`` non-empty)."""
    if on_text is None:
        return None
    pending = [bool(sent)]

    async def send(delta: str) -> None:
        if pending[0]:
            pending[0] = False
            delta = "\n\n" + delta
        await on_text(delta)

    return send
