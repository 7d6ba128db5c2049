"""``EchoModel``: the builtin deterministic model. No network, no weights.

It answers by echoing the last user message, and embeds text by hashing words
into a fixed number of dimensions, so the kernel alone runs a whole loop, with
semantic retrieval that finds texts sharing words.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

from carrier.protocols import Model
from carrier.types import ModelRequest, ModelResponse, Usage

__all__ = ["EchoModel", "hashed_embedding"]

_WORD = re.compile(r"[a-z0-9]+")


def hashed_embedding(text: str, dimension: int) -> list[float]:
    """A normalized bag-of-words vector: each word adds 1 at a hashed position."""
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest, "little") % dimension] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


class EchoModel(Model):
    """Deterministic: ``"<prefix><last user message>"`` (the message itself, without the
    per-message sections the prompt layout puts before it); hashed-word embeddings."""

    def __init__(
        self, *, model: str | None = None, prefix: str = "You said: ", dimension: int = 128
    ) -> None:
        self.name = f"echo:{model}" if model else "echo"
        self.prefix = prefix
        self.dimension = dimension
        self.embedding_dimension = dimension
        self.context_window = 1_000_000

    async def generate(self, request: ModelRequest) -> ModelResponse:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        offset = request.metadata.get("message_offset")
        if isinstance(offset, int) and request.messages and request.messages[-1].content == last:
            last = last[offset:]  # the message, not the per-message sections before it
        text = f"{self.prefix}{last}"
        usage = Usage(
            input_tokens=sum(self.count_tokens(m.content) for m in request.messages),
            output_tokens=self.count_tokens(text),
        )
        return ModelResponse(text=text, usage=usage, model=self.name, finish_reason="stop")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [hashed_embedding(t, self.dimension) for t in texts]
