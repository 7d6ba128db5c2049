"""One ``APIRouter`` per resource; ``create_app`` includes them all.

``messages`` (the ElizaOS message routes), ``memories`` (a room's messages and their
files), ``agents`` (the agents and ``/me``), ``service`` (health, readiness, the page),
``approvals`` (actions waiting for a person's decision).
"""

from __future__ import annotations

from carrier_plugin_http.routers import agents, approvals, memories, messages, service

__all__ = ["agents", "approvals", "memories", "messages", "service"]
