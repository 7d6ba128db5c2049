"""Carrier plugin: Claude models through the ``anthropic`` SDK.

Entry point ``anthropic`` (:mod:`carrier_plugin_anthropic.plugin`). The SDK is imported
only when a model is built, never by plugin discovery.
"""

from __future__ import annotations

__all__: list[str] = []
