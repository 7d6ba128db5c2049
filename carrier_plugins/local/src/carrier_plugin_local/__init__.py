"""Carrier's embedded default model: chat on llama.cpp, embeddings on onnxruntime.

The plugin module (:mod:`carrier_plugin_local.plugin`) is what the ``local`` entry
point loads; the engines are imported only when a model is first used.
"""

from __future__ import annotations

__all__: list[str] = []
