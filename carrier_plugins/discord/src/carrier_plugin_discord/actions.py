"""``REACT``: the agent adds an emoji reaction to a Discord message.

The action only records what to add (its result's ``data``); the Discord client that
handles the turn adds the reaction once the reply is stored, so the action needs no
connection and a replayed turn reuses the stored result instead of reacting again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from carrier.protocols import Action
from carrier.types import ActionResult, Memory, State

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = ["REACT_KEY", "ReactAction", "ReactArguments"]

#: Where a REACT result keeps what to add.
REACT_KEY = "discord_reaction"


class ReactArguments(BaseModel):
    """What REACT takes."""

    model_config = ConfigDict(extra="forbid")

    emoji: str = Field(min_length=1, max_length=64, description="A unicode emoji, e.g. 👍.")


class ReactAction(Action):
    """React to the message being answered with an emoji (Discord only)."""

    name = "REACT"
    description = (
        "Add an emoji reaction to the message you are answering (Discord). Use it to "
        "acknowledge without words, or alongside your reply."
    )
    similes = ("ADD_REACTION", "EMOJI_REACT")
    examples: ClassVar[list[list[dict[str, Any]]]] = []
    parameters = ReactArguments

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        return message.content.source == "discord" and isinstance(
            message.metadata.get("discord"), dict
        )

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, ReactArguments)
        found = message.metadata.get("discord") or {}
        return ActionResult(
            name=self.name,
            text=f"Reacted with {arguments.emoji}.",
            data={
                REACT_KEY: {
                    "emoji": arguments.emoji,
                    "channel_id": found.get("channel_id"),
                    "message_id": found.get("message_id"),
                }
            },
        )
