"""Read a GGUF file's metadata and build its tokenizer, without loading the weights.

``count_tokens`` must be fast and must not wait for the engine, so the chat
model's tokenizer is rebuilt in-process from the vocabulary and merges stored in
the GGUF header, with the ``tokenizers`` library. Only byte-level BPE
vocabularies (``tokenizer.ggml.model == "gpt2"``, SmolLM2's and most recent
models') are rebuilt; for the others :func:`load_tokenizer` returns ``None`` and
the caller estimates.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["load_tokenizer", "read_metadata"]

_MAGIC = b"GGUF"
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
#: Keys read from the header; the others are skipped without decoding.
_WANTED = (
    "general.name",
    "general.architecture",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.chat_template",
)
#: llama.cpp's token type for control tokens (``<|im_start|>``, ...).
_CONTROL, _USER_DEFINED = 3, 4


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.pos = 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.scalar("<Q")
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int, *, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            if keep:
                return self.string()
            size = self.scalar("<Q")
            self.pos += size
            return None
        if kind == _ARRAY:
            item_kind = self.scalar("<I")
            count = self.scalar("<Q")
            if item_kind in _SCALARS and not keep:
                self.pos += struct.calcsize(_SCALARS[item_kind]) * count
                return None
            if item_kind in _SCALARS:
                fmt = "<" + _SCALARS[item_kind][1] * count
                values = list(struct.unpack_from(fmt, self.data, self.pos))
                self.pos += struct.calcsize(fmt)
                return values
            return [self.value(item_kind, keep=keep) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path) -> dict[str, Any]:
    """The tokenizer and naming keys of a GGUF file's header.

    Raises:
        ValueError: The file is not a GGUF file.
        OSError: The file cannot be read.
    """
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != _MAGIC:
            raise ValueError(f"{str(path)!r} is not a GGUF file (it does not start with 'GGUF')")
        reader = _Reader(data)
        reader.pos = 4
        version = reader.scalar("<I")
        if version < 2:
            raise ValueError(f"{str(path)!r} is GGUF version {version}; 2 or later is needed")
        reader.scalar("<Q")  # tensor count
        kv_count = reader.scalar("<Q")
        found: dict[str, Any] = {}
        for _ in range(kv_count):
            key = reader.string()
            kind = reader.scalar("<I")
            keep = key in _WANTED or key.endswith(".context_length")
            value = reader.value(kind, keep=keep)
            if keep:
                found[key] = value
        return found


def load_tokenizer(metadata: dict[str, Any]) -> Tokenizer | None:
    """A ``tokenizers.Tokenizer`` equal to the model's byte-level BPE, or ``None``."""
    if metadata.get("tokenizer.ggml.model") != "gpt2":
        return None
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens: list[str] = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    steps: list[Any] = []
    if metadata.get("tokenizer.ggml.pre") in ("smollm", "qwen2", "llama-bpe", "llama3"):
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    types = metadata.get("tokenizer.ggml.token_type") or []
    special = [
        AddedToken(tokens[i], special=True, normalized=False)
        for i, kind in enumerate(types)
        if kind in (_CONTROL, _USER_DEFINED)
    ]
    if special:
        tokenizer.add_special_tokens(special)
    return tokenizer
