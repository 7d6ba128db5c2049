"""The next turn's prefix, prefilled while the user reads the answer.

Between two drops of a room's history window (:mod:`carrier.layout`), each request
begins with the whole stable prefix of the one before it, and a prompt cache serves
it. What it cannot serve is what changed since: the answer just given, now part of the
history, and, when the window drops its older half, the shift of the half it keeps
(llama.cpp moves the kept tokens and recomputes the keys of every cell of its cache).
Both are known once the answer is stored. So, after an answer's evaluators, the
runtime composes the room's next request as far as it can be known (the history with
this exchange, through the same window) and hands its stable prefix to the large
model's :meth:`Model.prefill <carrier.protocols.Model.prefill>` in the background. A
model with a prompt cache reads it; the next message then reads only itself.

Nothing of another room goes into it, and it is never needed: a message that comes
first is answered as before (the local backend skips a prefill while it is busy).
``AgentRuntime.warmed`` waits for the prefills in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from carrier.types import Memory, ModelClass, ModelRequest

if TYPE_CHECKING:
    from carrier.types import State

__all__ = ["next_turn_state", "prefix_request"]


def next_turn_state(state: State, responses: Sequence[Memory], history_limit: int) -> State:
    """The state of the room's next message as its prefix shows it: this turn's state
    with the answer added to the history and an empty message from the same sender.
    The history is what the store will return then (the last ``history_limit``
    messages, the next one included), so the window sees the ids the next turn will."""
    upcoming = Memory(
        id=f"{state.message.id}-next",
        agent_id=state.agent_id,
        entity_id=state.message.entity_id,
        room_id=state.room.id,
        world_id=state.message.world_id,
    )
    recent = [*state.recent_messages, *responses, upcoming][-history_limit:]
    return state.model_copy(update={"message": upcoming, "recent_messages": recent})


def prefix_request(request: ModelRequest) -> ModelRequest:
    """The stable prefix of ``request`` (``metadata["prefix_messages"]``): its system
    prompt, offered actions and history, without the per-message turn."""
    count = int(request.metadata.get("prefix_messages", 0))
    metadata = {
        key: request.metadata[key]
        for key in ("room_id", "history_ids", "prefix_messages")
        if key in request.metadata
    }
    return ModelRequest(
        model_class=ModelClass.LARGE,
        system=request.system,
        messages=request.messages[:count],
        actions=request.actions,
        metadata=metadata,
    )
