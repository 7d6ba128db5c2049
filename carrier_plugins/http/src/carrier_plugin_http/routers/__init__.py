"""One ``APIRouter`` per resource; ``create_app`` includes them all.

``messages`` (the ElizaOS message routes), ``memories`` (a room's messages and their
files), ``agents`` (the agents and ``/me``), ``service`` (health, readiness, the page).
"""

from __future__ import annotations

from carrier_plugin_http.routers import agents, memories, messages, service

__all__ = ["agents", "memories", "messages", "service"]
