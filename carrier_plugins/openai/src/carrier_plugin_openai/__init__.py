"""Carrier plugin: OpenAI and any OpenAI-compatible server, through the ``openai`` SDK.

Entry point ``openai`` (:mod:`carrier_plugin_openai.plugin`). The SDK is imported only
when a model is built, never by plugin discovery.
"""

from __future__ import annotations

__all__: list[str] = []
