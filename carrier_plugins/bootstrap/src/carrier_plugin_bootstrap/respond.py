"""The should-respond policy behind ``carrier_choose_should_respond``.

- A muted room: never.
- Direct, API, self and voice rooms: always (the agent's own messages only in
  its self room, where autonomous steps run).
- Group rooms (group, thread, feed): when addressed — the agent's name or
  username mentioned (``Nova``, ``@nova``), the agent's id in
  ``metadata["mentions"]``, or a reply to one of the agent's messages
  (``content.in_reply_to`` or ``metadata["in_reply_to"]``) — respond;
  otherwise ask the small model whether the conversation is for the agent
  (``CARRIER_BOOTSTRAP_GROUP_POLICY=model``, the default, and always in followed
  rooms) or ignore it (``mention``).

The hook is synchronous, so the decision reads only the message, the room and
the agent's participant record; it never touches the store.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from carrier.types import ParticipantState, RespondDecision, RoomType

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier.types import Memory, Participant, Room

__all__ = ["addressed", "decide"]

_ALWAYS = frozenset({RoomType.DIRECT, RoomType.API, RoomType.SELF, RoomType.VOICE})


def addressed(runtime: AgentRuntime, message: Memory) -> bool:
    """Whether the message names, mentions or replies to the agent."""
    agent_id = runtime.agent_id
    mentions = message.metadata.get("mentions")
    if isinstance(mentions, list | tuple | set) and agent_id in mentions:
        return True
    reply_to = message.content.in_reply_to or str(message.metadata.get("in_reply_to") or "")
    # the agent's responses have ids "{message_id}-{agent_id}[-n]"
    if reply_to and re.search(rf"-{re.escape(agent_id)}(?:-\d+)?$", reply_to):
        return True
    names = {n for n in (runtime.character.name, runtime.character.username) if n}
    if not names:
        return False
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.search(rf"(?<![\w@])@?(?:{pattern})(?!\w)", message.content.text, re.I) is not None


def decide(
    runtime: AgentRuntime,
    message: Memory,
    room: Room,
    participant: Participant | None,
    *,
    group_policy: str = "model",
) -> RespondDecision:
    """The decision for one stored message (see the module docstring)."""
    state = participant.state if participant is not None else ParticipantState.NONE
    if state is ParticipantState.MUTED:
        return RespondDecision.IGNORE
    if message.entity_id == runtime.agent_id and room.type is not RoomType.SELF:
        return RespondDecision.IGNORE
    if room.type in _ALWAYS:
        return RespondDecision.RESPOND
    if addressed(runtime, message):
        return RespondDecision.RESPOND
    if not message.content.text.strip():
        return RespondDecision.IGNORE
    if state is ParticipantState.FOLLOWED or group_policy == "model":
        return RespondDecision.ASK_MODEL
    return RespondDecision.IGNORE
