"""The core actions: REPLY, IGNORE, NONE, CONTINUE, FOLLOW_ROOM, UNFOLLOW_ROOM,
MUTE_ROOM, UNMUTE_ROOM, SEND_MESSAGE and UPDATE_GOAL.

Every action has a description, similes, ElizaOS-style examples and a pydantic
parameters model (extra fields forbidden, so a model inventing arguments is told
so). ``required_role`` is enforced by the kernel; the defaults below can be
changed per agent with ``CARRIER_BOOTSTRAP_ACTION_ROLES``.

The sender's role is the one the client set (:func:`sender_role`). An admin's role
holds in the room it was given in only: every right over another room (sending
there, following, muting or unmuting it, updating its goals) needs the owner,
whatever the role overrides say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from carrier.acting import ROLE_RANK
from carrier.errors import ToolRetry
from carrier.protocols import Action
from carrier.types import (
    ActionResult,
    Content,
    Goal,
    GoalStatus,
    Memory,
    ParticipantState,
    Role,
    RoomType,
    State,
)
from carrier_plugin_bootstrap.config import apply_action_roles

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = [
    "ACTIONS",
    "ContinueAction",
    "FollowRoomAction",
    "IgnoreAction",
    "MuteRoomAction",
    "NoneAction",
    "ReplyAction",
    "SendMessageAction",
    "UnfollowRoomAction",
    "UnmuteRoomAction",
    "UpdateGoalAction",
    "sender_role",
]

#: Room types where following and muting mean something.
GROUP_ROOMS = frozenset({RoomType.GROUP, RoomType.THREAD, RoomType.FEED, RoomType.VOICE})
#: Rooms searched for a person named in SEND_MESSAGE.
_ROOM_SCAN = 200


def sender_role(message: Memory) -> Role:
    """The sender's role, as the client set it (member when unknown).

    The kernel writes ``metadata["role"]`` from ``IncomingMessage.role`` after the
    client's metadata, so nothing in a message can raise it; it is the only place
    the plugin reads a role from.
    """
    try:
        return Role(message.metadata.get("role", Role.MEMBER))
    except ValueError:
        return Role.MEMBER


def _at_least(message: Memory, role: Role) -> bool:
    return ROLE_RANK[sender_role(message)] >= ROLE_RANK[role]


def _other_room_refused(name: str, message: Memory, what: str) -> ActionResult:
    return _refused(
        name,
        f"{what} needs the owner role; the sender's role is {sender_role(message)}, "
        f"and an admin's role holds in its own room only. Nothing was done.",
    )


def _refused(name: str, error: str) -> ActionResult:
    return ActionResult(name=name, success=False, error=error, data={"refused": True})


def _example(user: str, agent: str, *actions: str) -> list[dict[str, Any]]:
    return [
        {"name": "{{user1}}", "content": {"text": user}},
        {"name": "{{agent}}", "content": {"text": agent, "actions": list(actions)}},
    ]


class _Arguments(BaseModel):
    """Base of every parameters model: unknown arguments are an error."""

    model_config = ConfigDict(extra="forbid")


class NoArguments(_Arguments):
    """For actions that take no arguments."""


class ReasonArguments(_Arguments):
    reason: str | None = Field(default=None, max_length=300, description="Why, in a few words.")


class BootstrapAction(Action):
    """Applies the per-agent role overrides of ``CARRIER_BOOTSTRAP_ACTION_ROLES``."""

    parameters: ClassVar[type[BaseModel] | None] = NoArguments

    async def setup(self, runtime: AgentRuntime) -> None:
        """Apply the role overrides to the runtime's actions; ``ConfigurationError``
        when they name an unknown role or action (see :func:`apply_action_roles`)."""
        apply_action_roles(runtime)


# ---- replying -----------------------------------------------------------------------


class ReplyArguments(_Arguments):
    text: str | None = Field(
        default=None,
        max_length=4000,
        description="The reply, only when your answer's own text is empty.",
    )


class ReplyAction(BootstrapAction):
    """Answer in the current room (the model's text is the reply)."""

    name = "REPLY"
    description = (
        "Reply to the current message. Your answer's text is the reply; give 'text' only "
        "when you wrote none."
    )
    similes = ("RESPOND", "ANSWER", "GREET", "CHAT")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("Hello there!", "Hi! How can I help?", "REPLY")
    ]
    parameters = ReplyArguments

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        text = arguments.text if isinstance(arguments, ReplyArguments) else None
        messages = []
        if text and text.strip():
            messages.append(
                Content(
                    text=text.strip(),
                    actions=[self.name],
                    source=message.content.source,
                    in_reply_to=message.id,
                )
            )
        return ActionResult(name=self.name, messages=messages)


class IgnoreAction(BootstrapAction):
    """Stay silent: the model's text for this step is dropped."""

    name = "IGNORE"
    description = (
        "Say nothing: use when the message is not for you, the conversation is over, or "
        "the user is rude. Any text you wrote is dropped."
    )
    similes = ("STOP_TALKING", "STAY_SILENT", "NO_REPLY")
    examples: ClassVar[list[list[dict[str, Any]]]] = [_example("ok bye, talk later", "", "IGNORE")]
    parameters = ReasonArguments

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        # autonomous steps must act, not stay silent
        return not message.metadata.get("internal")

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        reason = arguments.reason if isinstance(arguments, ReasonArguments) else None
        return ActionResult(
            name=self.name, suppress_reply=True, data={"reason": reason} if reason else {}
        )


class NoneAction(BootstrapAction):
    """Reply with text only; no action."""

    name = "NONE"
    description = "Reply with your text and do nothing else."
    similes = ("NO_ACTION", "NOTHING", "NO_OP")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("Nice weather today.", "It really is!", "NONE")
    ]

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name)


class ContinueAction(BootstrapAction):
    """Ask for another step: the model answers again, seeing this step's results."""

    name = "CONTINUE"
    description = (
        "Take another step after this one (you will see the results of this step's "
        "actions); use when you have more to do or say."
    )
    similes = ("ELABORATE", "KEEP_GOING", "NEXT_STEP")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("Tell me about Rome, in detail.", "Rome was founded in 753 BC...", "CONTINUE")
    ]
    parameters = ReasonArguments

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        # never offered on the last step the kernel allows
        return state.step + 1 < runtime.settings.max_action_steps

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, continue_chain=True)


# ---- following and muting rooms -------------------------------------------------------


class RoomArguments(_Arguments):
    room_id: str | None = Field(
        default=None,
        max_length=200,
        description="Another room's id (the owner only); default: this room.",
    )


class _RoomStateAction(BootstrapAction):
    """Sets the agent's own participant state in a room."""

    parameters = RoomArguments
    #: The state this action sets, and the state it requires first (``None``: any).
    sets: ClassVar[ParticipantState]
    requires: ClassVar[ParticipantState | None] = None
    done_text: ClassVar[str]

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        if _at_least(message, Role.OWNER):
            return True  # may name another room
        if state.room.type not in GROUP_ROOMS:
            return False
        if self.requires is None:
            return True
        participant = await runtime.store.get_participant(state.room.id, runtime.agent_id)
        current = participant.state if participant else ParticipantState.NONE
        return current is self.requires

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        room_id = (arguments.room_id if isinstance(arguments, RoomArguments) else None) or (
            state.room.id
        )
        if room_id != state.room.id:
            if not _at_least(message, Role.OWNER):
                return _other_room_refused(
                    self.name, message, f"{self.name} on another room ({room_id!r})"
                )
            if await runtime.store.get_room(room_id) is None:
                raise ToolRetry(f"There is no room {room_id!r}; give the id of a room you know.")
        participant = await runtime.store.get_participant(room_id, runtime.agent_id)
        current = participant.state if participant else ParticipantState.NONE
        if self.requires is not None and current is not self.requires:
            return ActionResult(
                name=self.name,
                success=False,
                error=f"{self.name} needs the room to be {self.requires}; it is {current}.",
                data={"room_id": room_id, "state": current.value},
            )
        await runtime.set_participant_state(room_id, runtime.agent_id, self.sets)
        return ActionResult(
            name=self.name,
            text=self.done_text.format(room=room_id),
            data={"room_id": room_id, "state": self.sets.value},
        )


class FollowRoomAction(_RoomStateAction):
    name = "FOLLOW_ROOM"
    description = (
        "Follow this group room: take part in its conversation without being mentioned. "
        "Use when asked to join in or pay attention here."
    )
    similes = ("JOIN_ROOM", "FOLLOW_CHANNEL", "LISTEN_HERE", "PARTICIPATE")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example(
            "{{agent}}, please follow this channel.", "Sure, I'll keep up here.", "FOLLOW_ROOM"
        )
    ]
    sets = ParticipantState.FOLLOWED
    done_text = "Now following room {room}."

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        if not await super().validate(runtime, message, state):
            return False
        if _at_least(message, Role.OWNER) and state.room.type not in GROUP_ROOMS:
            return True
        participant = await runtime.store.get_participant(state.room.id, runtime.agent_id)
        return participant is None or participant.state is not ParticipantState.FOLLOWED


class UnfollowRoomAction(_RoomStateAction):
    name = "UNFOLLOW_ROOM"
    description = (
        "Stop following this room: answer here again only when mentioned. Use when asked "
        "to stop joining in."
    )
    similes = ("LEAVE_ROOM", "UNFOLLOW_CHANNEL", "STOP_FOLLOWING")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example(
            "{{agent}}, stop following this chat.", "Okay, mention me if needed.", "UNFOLLOW_ROOM"
        )
    ]
    sets = ParticipantState.NONE
    requires = ParticipantState.FOLLOWED
    done_text = "Stopped following room {room}."


class MuteRoomAction(_RoomStateAction):
    name = "MUTE_ROOM"
    description = (
        "Mute this room: never answer here again until unmuted. Use when asked to be "
        "quiet or to stop talking here."
    )
    similes = ("SHUT_UP", "BE_QUIET", "MUTE_CHANNEL", "STOP_RESPONDING")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("{{agent}}, please be quiet in here.", "Understood, going quiet.", "MUTE_ROOM")
    ]
    sets = ParticipantState.MUTED
    done_text = "Muted room {room}."

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        if not await super().validate(runtime, message, state):
            return False
        participant = await runtime.store.get_participant(state.room.id, runtime.agent_id)
        return participant is None or participant.state is not ParticipantState.MUTED


class UnmuteRoomAction(_RoomStateAction):
    name = "UNMUTE_ROOM"
    description = (
        "Unmute a room you muted (give its room_id when asked from another room), so you "
        "may answer there again."
    )
    similes = ("UNMUTE_CHANNEL", "RESUME_ROOM", "START_TALKING")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("You can talk in #general again.", "Thanks, unmuting it.", "UNMUTE_ROOM")
    ]
    sets = ParticipantState.NONE
    requires = ParticipantState.MUTED
    done_text = "Unmuted room {room}."


# ---- sending elsewhere ------------------------------------------------------------------


class SendMessageArguments(_Arguments):
    text: str = Field(min_length=1, max_length=4000, description="What to send.")
    room_id: str | None = Field(default=None, max_length=200, description="The target room.")
    entity: str | None = Field(
        default=None,
        max_length=200,
        description="Or the id or name of a person: sent to a room you share with them.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> SendMessageArguments:
        if (self.room_id is None) == (self.entity is None):
            raise ValueError("give exactly one of room_id or entity")
        return self


class SendMessageAction(BootstrapAction):
    """Send a message to another room, or to a person the agent shares a room with."""

    name = "SEND_MESSAGE"
    description = (
        "Send a message to another room (room_id) or to a person you know (entity: id or "
        "name); it is delivered there, not here."
    )
    similes = ("MESSAGE_ROOM", "DM", "SEND_DM", "NOTIFY", "TELL")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("Tell Bob the build is green.", "Done, I told Bob.", "SEND_MESSAGE")
    ]
    parameters = SendMessageArguments
    required_role = Role.OWNER

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, SendMessageArguments)
        # checked before any lookup, so a refusal tells nothing about other rooms
        if arguments.room_id != state.room.id and not _at_least(message, Role.OWNER):
            return _other_room_refused(self.name, message, "Sending to another room")
        store = runtime.store
        if arguments.room_id is not None:
            room = await store.get_room(arguments.room_id)
            if room is None or await store.get_participant(room.id, runtime.agent_id) is None:
                raise ToolRetry(
                    f"You are not in a room {arguments.room_id!r}; give a room you know."
                )
            room_id = room.id
        else:
            assert arguments.entity is not None
            target = await self._entity_id(runtime, state, arguments.entity)
            shared = await self._shared_room(runtime, target, state.room.id)
            if shared is None:
                raise ToolRetry(
                    f"You share no room with {arguments.entity!r}; name someone you know or "
                    f"give a room_id."
                )
            room_id = shared
        sent = await runtime.send_message(
            room_id, Content(text=arguments.text, actions=[self.name], source="bootstrap")
        )
        return ActionResult(
            name=self.name,
            text=f"Sent to room {room_id}.",
            data={"room_id": room_id, "memory_id": sent.id},
        )

    @staticmethod
    async def _entity_id(runtime: AgentRuntime, state: State, entity: str) -> str:
        wanted = entity.strip().lstrip("@")
        key = wanted.lower()
        for actor in state.actors:
            if actor.id.lower() == key or key in (n.lower() for n in actor.names):
                return actor.id
        store = runtime.store
        found = await store.get_entities(list(dict.fromkeys([wanted, key])))
        if found:
            return found[0].id
        # someone the agent shares a room with, by name (bounded scan)
        for room_id in (await store.get_rooms_for_entity(runtime.agent_id))[:_ROOM_SCAN]:
            ids = [p.entity_id for p in await store.get_participants(room_id)]
            for candidate in await store.get_entities(ids):
                if key in (n.lower() for n in candidate.names):
                    return candidate.id
        raise ToolRetry(f"You know nobody called {entity!r}; use their id or a known name.")

    @staticmethod
    async def _shared_room(runtime: AgentRuntime, entity_id: str, current: str) -> str | None:
        store = runtime.store
        theirs = set(await store.get_rooms_for_entity(entity_id))
        shared = [r for r in await store.get_rooms_for_entity(runtime.agent_id) if r in theirs]
        rooms = [room for room in [await store.get_room(r) for r in shared] if room is not None]
        direct = [r.id for r in rooms if r.type is RoomType.DIRECT and r.id != current]
        others = [r.id for r in rooms if r.id != current]
        candidates = direct or others
        return candidates[0] if candidates else None


# ---- goals ----------------------------------------------------------------------------


class UpdateGoalArguments(_Arguments):
    goal: str | None = Field(
        default=None,
        max_length=200,
        description="The goal's id or name; default: the goal being worked on.",
    )
    objective: int | str | None = Field(
        default=None, description="The objective's number (1 = first) or its description."
    )
    completed: bool = Field(default=True, description="Whether that objective is done.")
    status: Literal["in_progress", "done", "failed"] | None = Field(
        default=None, description="Set the whole goal's status."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> UpdateGoalArguments:
        if self.objective is None and self.status is None:
            raise ValueError("give an objective to mark, or a status for the goal")
        if isinstance(self.objective, int) and self.objective < 1:
            raise ValueError("objectives are numbered from 1")
        return self


class UpdateGoalAction(BootstrapAction):
    """Mark a goal's objective done (or not), or set the goal's status."""

    name = "UPDATE_GOAL"
    description = (
        "Record progress on a goal: mark an objective completed (by number or text), or "
        "set the goal's status to done or failed."
    )
    similes = ("COMPLETE_OBJECTIVE", "GOAL_PROGRESS", "MARK_DONE", "FINISH_GOAL")
    examples: ClassVar[list[list[dict[str, Any]]]] = [
        _example("I've booked the venue.", "Great, that's objective 1 done.", "UPDATE_GOAL")
    ]
    parameters = UpdateGoalArguments

    async def validate(self, runtime: AgentRuntime, message: Memory, state: State) -> bool:
        return any(not g.finished for g in state.goals)

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        assert isinstance(arguments, UpdateGoalArguments)
        goal = await self._find_goal(runtime, message, state, arguments.goal)
        if goal.room_id not in (None, message.room_id) and not _at_least(message, Role.OWNER):
            return _other_room_refused(self.name, message, "Updating another room's goal")
        objectives = [o.model_copy() for o in goal.objectives]
        changed: str | None = None
        if arguments.objective is not None:
            index = _objective_index(goal, arguments.objective)
            objectives[index].completed = arguments.completed
            changed = objectives[index].description
        status = GoalStatus(arguments.status) if arguments.status else goal.status
        updated = goal.model_copy(update={"objectives": objectives, "status": status})
        if updated.status is GoalStatus.IN_PROGRESS and updated.finished:
            updated = updated.model_copy(update={"status": GoalStatus.DONE})
        await runtime.store.upsert_goal(updated)
        done = sum(o.completed for o in updated.objectives)
        text = f"Goal {updated.name!r}: {done}/{len(updated.objectives)} objectives done"
        if changed is not None:
            text += f"; {'completed' if arguments.completed else 'reopened'} {changed!r}"
        return ActionResult(
            name=self.name,
            text=f"{text}; status {updated.status.value}.",
            data={"goal_id": updated.id, "status": updated.status.value, "done": done},
        )

    @staticmethod
    async def _find_goal(
        runtime: AgentRuntime, message: Memory, state: State, wanted: str | None
    ) -> Goal:
        open_goals = [g for g in state.goals if not g.finished]
        if wanted is None:
            goal_id = message.metadata.get("goal_id")
            if goal_id:
                goal = await runtime.store.get_goal(str(goal_id))
                if goal is not None:
                    return goal
            if len(open_goals) == 1:
                return open_goals[0]
            raise ToolRetry(
                "Name the goal to update: "
                + "; ".join(f"{g.name!r} (id {g.id})" for g in open_goals)
                + "."
            )
        key = wanted.strip().lower()
        for goal in open_goals:
            if key in (goal.id.lower(), goal.name.lower()):
                return goal
        goal = await runtime.store.get_goal(wanted)
        if goal is not None and goal.agent_id == runtime.agent_id:
            return goal
        raise ToolRetry(
            f"There is no goal {wanted!r}. Open goals: "
            + ("; ".join(f"{g.name!r} (id {g.id})" for g in open_goals) or "none")
            + "."
        )


def _objective_index(goal: Goal, objective: int | str) -> int:
    if isinstance(objective, int) or objective.strip().isdigit():
        number = int(objective)
        if 1 <= number <= len(goal.objectives):
            return number - 1
        raise ToolRetry(
            f"Goal {goal.name!r} has objectives 1 to {len(goal.objectives)}; "
            f"{number} is not one of them."
        )
    key = objective.strip().lower()
    for index, candidate in enumerate(goal.objectives):
        if candidate.description.lower() == key:
            return index
    for index, candidate in enumerate(goal.objectives):
        if key in candidate.description.lower() or candidate.description.lower() in key:
            return index
    listed = "; ".join(f"{i + 1}. {o.description}" for i, o in enumerate(goal.objectives))
    raise ToolRetry(f"No objective of goal {goal.name!r} matches {objective!r}: {listed}.")


#: Every action of the plugin, by name.
ACTIONS: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (
        ReplyAction,
        IgnoreAction,
        NoneAction,
        ContinueAction,
        FollowRoomAction,
        UnfollowRoomAction,
        MuteRoomAction,
        UnmuteRoomAction,
        SendMessageAction,
        UpdateGoalAction,
    )
}
