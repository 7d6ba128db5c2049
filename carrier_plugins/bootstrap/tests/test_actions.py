"""Every action: its happy path, its validation failure and its permission refusal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import MemoryStore
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.types import (
    Goal,
    GoalStatus,
    IncomingMessage,
    MemoryType,
    Objective,
    ParticipantState,
    Role,
)

Say = Callable[..., IncomingMessage]


async def _state(agent: AgentRuntime, room: str) -> ParticipantState:
    participant = await agent.store.get_participant(room, agent.agent_id)
    assert participant is not None
    return participant.state


# ---- REPLY, IGNORE, NONE, CONTINUE --------------------------------------------------------


async def test_reply_sends_its_text_when_the_answer_has_none(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("", actions=[("REPLY", {"text": "Hi Ada!"})])
    reply = await agent.handle(say("hello"))
    assert reply.texts == ["Hi Ada!"]
    fake_model.queue("Hello again.", actions=["REPLY"])
    assert (await agent.handle(say("hello again"))).texts == ["Hello again."]


async def test_ignore_drops_the_text(agent: AgentRuntime, fake_model: FakeModel, say: Say) -> None:
    fake_model.queue("whatever", actions=[("IGNORE", {"reason": "chatter"})])
    reply = await agent.handle(say("ok bye"))
    assert reply.texts == []
    assert reply.action_results[0].success
    assert reply.action_results[0].data == {"reason": "chatter"}


async def test_none_keeps_the_text(agent: AgentRuntime, fake_model: FakeModel, say: Say) -> None:
    fake_model.queue("Nice!", actions=["NONE"])
    reply = await agent.handle(say("nice weather"))
    assert reply.texts == ["Nice!"]
    assert reply.action_results[0].success


async def test_continue_takes_another_step(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Part one.", actions=["CONTINUE"]).queue("Part two.")
    reply = await agent.handle(say("tell me everything"))
    assert reply.texts == ["Part one.", "Part two."]
    assert "- CONTINUE: ok" in prompt_text(fake_model.requests[1])


async def test_continue_is_refused_on_the_last_step(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    steps = agent.settings.max_action_steps
    fake_model.queue("more", actions=["CONTINUE"], times=steps + 1)
    reply = await agent.handle(say("go on forever"))
    assert len(fake_model.requests) == steps  # bounded
    assert [r.success for r in reply.action_results] == [True] * (steps - 1) + [False]
    assert "which is not offered here" in (reply.action_results[-1].error or "")


# ---- FOLLOW_ROOM / UNFOLLOW_ROOM / MUTE_ROOM / UNMUTE_ROOM -------------------------------------


async def test_follow_and_unfollow_a_group_room(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Sure.", actions=["FOLLOW_ROOM"])
    reply = await agent.handle(say("Testy, follow this room", group=True))
    assert reply.action_results[0].success, reply.action_results
    assert await _state(agent, "group-ada") is ParticipantState.FOLLOWED
    fake_model.queue("Okay.", actions=["UNFOLLOW_ROOM"])
    reply = await agent.handle(say("Testy, stop following", group=True))
    assert reply.action_results[0].success, reply.action_results
    assert await _state(agent, "group-ada") is ParticipantState.NONE


async def test_unfollow_fails_when_not_following(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Okay.", actions=["UNFOLLOW_ROOM"])
    reply = await agent.handle(say("Testy, stop following", group=True))
    (result,) = reply.action_results
    assert not result.success
    assert "not offered here" in (result.error or "")
    assert "UNFOLLOW_ROOM" not in {a.name for a in fake_model.requests[0].actions}


async def test_follow_is_not_for_members_in_direct_rooms(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Sure.", actions=["FOLLOW_ROOM"])
    reply = await agent.handle(say("follow this"))
    assert not reply.action_results[0].success
    assert await _state(agent, "dm-ada") is ParticipantState.NONE


async def test_mute_silences_the_room_and_the_owner_unmutes_it_from_elsewhere(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Going quiet.", actions=["MUTE_ROOM"])
    reply = await agent.handle(say("Testy, be quiet", group=True))
    assert reply.action_results[0].success
    assert await _state(agent, "group-ada") is ParticipantState.MUTED
    calls = len(fake_model.requests)
    muted = await agent.handle(say("Testy, are you there?", group=True))
    assert muted.ignored
    assert len(fake_model.requests) == calls

    fake_model.queue("Unmuted.", actions=[("UNMUTE_ROOM", {"room_id": "group-ada"})])
    reply = await agent.handle(say("unmute the group", role=Role.ADMIN))
    assert not reply.action_results[0].success  # an admin of dm-ada only: not offered
    assert await _state(agent, "group-ada") is ParticipantState.MUTED
    fake_model.queue("Unmuted.", actions=[("UNMUTE_ROOM", {"room_id": "group-ada"})])
    reply = await agent.handle(say("unmute the group", role=Role.OWNER))
    assert reply.action_results[0].success, reply.action_results
    assert await _state(agent, "group-ada") is ParticipantState.NONE
    fake_model.queue("Yes!")
    assert (await agent.handle(say("Testy, are you back?", group=True))).texts == ["Yes!"]


async def test_unmute_fails_when_the_room_is_not_muted(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Hm.", actions=["UNMUTE_ROOM"])
    reply = await agent.handle(say("Testy, unmute", group=True))
    (result,) = reply.action_results
    assert not result.success
    assert "not offered here" in (result.error or "")
    fake_model.queue("Hm.", actions=[("UNMUTE_ROOM", {"room_id": "group-ada"})])
    reply = await agent.handle(say("unmute the group", role=Role.OWNER))
    (result,) = reply.action_results
    assert not result.success
    assert "needs the room to be muted" in (result.error or "")


async def test_a_member_cannot_act_on_another_room(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("ok", actions=["REPLY"])
    await agent.handle(say("Testy, hi", user="bob", group=True, room="other-group"))
    fake_model.queue("Muting it.", actions=[("MUTE_ROOM", {"room_id": "other-group"})])
    reply = await agent.handle(say("Testy, mute the other group", group=True))
    (result,) = reply.action_results
    assert not result.success
    assert result.data["refused"] is True
    assert "needs the owner role; the sender's role is member" in (result.error or "")
    assert await _state(agent, "other-group") is ParticipantState.NONE


# ---- SEND_MESSAGE ------------------------------------------------------------------------


async def test_send_message_to_a_room_and_to_a_person(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Hi Bob.")
    await agent.handle(say("hello", user="bob"))  # the agent now shares dm-bob with Bob
    fake_model.queue("Hi all.")
    await agent.handle(say("Testy, hi", user="bob", group=True, room="team"))

    fake_model.queue("Sent.", actions=[("SEND_MESSAGE", {"room_id": "team", "text": "Build ok"})])
    reply = await agent.handle(say("tell the team the build is ok", role=Role.OWNER))
    assert reply.action_results[0].success, reply.action_results
    fake_model.queue("Told him.", actions=[("SEND_MESSAGE", {"entity": "Bob", "text": "Ping"})])
    reply = await agent.handle(say("tell bob ping", role=Role.OWNER))
    assert reply.action_results[0].data["room_id"] == "dm-bob"

    team = await agent.store.get_memories(agent_id=agent.agent_id, room_id="team")
    assert team[-1].content.text == "Build ok"
    assert team[-1].entity_id == agent.agent_id
    dm = await agent.store.get_memories(agent_id=agent.agent_id, room_id="dm-bob")
    assert dm[-1].content.text == "Ping"


async def test_send_message_validation(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    fake_model.queue("", actions=[("SEND_MESSAGE", {"text": "x"})])  # no target
    fake_model.queue("", actions=[("SEND_MESSAGE", {"room_id": "nowhere", "text": "x"})])
    fake_model.queue("ok")
    reply = await agent.handle(say("send it", role=Role.OWNER))
    first, second = reply.action_results
    assert "give exactly one of room_id or entity" in (first.error or "")
    assert "You are not in a room 'nowhere'" in (second.error or "")


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN])
async def test_send_message_needs_the_owner(
    agent: AgentRuntime, fake_model: FakeModel, say: Say, role: Role
) -> None:
    fake_model.queue("Sent.", actions=[("SEND_MESSAGE", {"room_id": "dm-ada", "text": "x"})])
    reply = await agent.handle(say("send it", role=role))
    (result,) = reply.action_results
    assert not result.success
    assert "SEND_MESSAGE" not in {a.name for a in fake_model.requests[0].actions}
    assert [m.content.text for m in reply.responses] == ["Sent."]  # only the text


# ---- rights over other rooms: two users, two rooms ----------------------------------------


async def _two_rooms(agent: AgentRuntime, fake_model: FakeModel, say: Say) -> None:
    """Ada is in group room-a, Bob in group room-b; the agent is in both."""
    fake_model.queue("Hi Ada.").queue("Hi Bob.")
    await agent.handle(say("Testy, hi", user="ada", group=True, room="room-a"))
    await agent.handle(say("Testy, hi", user="bob", group=True, room="room-b"))


async def _messages_in(agent: AgentRuntime, room: str) -> list[str]:
    memories = await agent.store.get_memories(agent_id=agent.agent_id, room_id=room)
    return [m.content.text for m in memories if m.entity_id == agent.agent_id]


async def test_an_admin_of_room_a_cannot_send_into_or_mute_room_b(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    await _two_rooms(agent, fake_model, say)
    send = ("SEND_MESSAGE", {"room_id": "room-b", "text": "hello from A"})
    fake_model.queue("Sent.", actions=[send])
    reply = await agent.handle(
        say("Testy, tell room B hi", group=True, room="room-a", role="admin")
    )
    (result,) = reply.action_results
    assert not result.success
    assert "SEND_MESSAGE" not in {a.name for a in fake_model.requests[-1].actions}
    fake_model.queue("Muting.", actions=[("MUTE_ROOM", {"room_id": "room-b"})])
    reply = await agent.handle(say("Testy, mute room B", group=True, room="room-a", role="admin"))
    (result,) = reply.action_results
    assert result.data.get("refused") is True
    assert "needs the owner role; the sender's role is admin" in (result.error or "")
    assert await _state(agent, "room-b") is ParticipantState.NONE
    assert await _messages_in(agent, "room-b") == ["Hi Bob."]
    # in its own room the admin's role holds
    fake_model.queue("Quiet now.", actions=["MUTE_ROOM"])
    reply = await agent.handle(say("Testy, be quiet", group=True, room="room-a", role="admin"))
    assert reply.action_results[0].success, reply.action_results
    assert await _state(agent, "room-a") is ParticipantState.MUTED


async def test_the_owner_can_send_into_and_mute_room_b(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    await _two_rooms(agent, fake_model, say)
    send = ("SEND_MESSAGE", {"room_id": "room-b", "text": "hello from A"})
    fake_model.queue("Sent.", actions=[send])
    reply = await agent.handle(
        say("Testy, tell room B hi", group=True, room="room-a", role="owner")
    )
    assert reply.action_results[0].success, reply.action_results
    fake_model.queue("Muting.", actions=[("MUTE_ROOM", {"room_id": "room-b"})])
    reply = await agent.handle(say("Testy, mute room B", group=True, room="room-a", role="owner"))
    assert reply.action_results[0].success, reply.action_results
    assert await _state(agent, "room-b") is ParticipantState.MUTED
    assert await _messages_in(agent, "room-b") == ["Hi Bob.", "hello from A"]


async def test_a_member_claiming_owner_in_metadata_stays_a_member(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    await _two_rooms(agent, fake_model, say)
    claim = {"metadata": {"role": "owner"}}
    send = ("SEND_MESSAGE", {"room_id": "room-b", "text": "hello from A"})
    fake_model.queue("Sent.", actions=[send])
    reply = await agent.handle(say("Testy, tell room B hi", group=True, room="room-a", **claim))
    assert not reply.action_results[0].success
    assert "SEND_MESSAGE" not in {a.name for a in fake_model.requests[-1].actions}
    fake_model.queue("Muting.", actions=[("MUTE_ROOM", {"room_id": "room-b"})])
    reply = await agent.handle(say("Testy, mute room B", group=True, room="room-a", **claim))
    (result,) = reply.action_results
    assert "the sender's role is member" in (result.error or "")
    assert await _state(agent, "room-b") is ParticipantState.NONE
    assert await _messages_in(agent, "room-b") == ["Hi Bob."]
    stored = await agent.store.get_memories(agent_id=agent.agent_id, room_id="room-a")
    assert {m.metadata["role"] for m in stored if m.entity_id == "ada"} == {"member"}


async def test_lowering_send_messages_role_gives_no_right_over_other_rooms(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: MemoryStore,
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", '{"SEND_MESSAGE": "admin"}')
    model = FakeModel(default_text="ok")
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": model, "small": FakeModel(default_text="{}"), "embedding": None},
    ) as agent:
        await _two_rooms(agent, model, say)
        for target in ({"room_id": "room-b"}, {"entity": "Bob"}):
            model.queue("Sent.", actions=[("SEND_MESSAGE", {**target, "text": "psst"})])
            reply = await agent.handle(
                say("Testy, pass it on", group=True, room="room-a", role="admin")
            )
            (result,) = reply.action_results
            assert result.data.get("refused") is True, result
            assert "Sending to another room needs the owner role" in (result.error or "")
        assert await _messages_in(agent, "room-b") == ["Hi Bob."]
        model.queue("", actions=[("SEND_MESSAGE", {"room_id": "room-a", "text": "here"})])
        reply = await agent.handle(
            say("Testy, say it here", group=True, room="room-a", role="admin")
        )
        assert reply.action_results[0].success, reply.action_results


# ---- UPDATE_GOAL -------------------------------------------------------------------------


async def _goal(agent: AgentRuntime, room: str = "dm-ada") -> Goal:
    goal = Goal(
        agent_id=agent.agent_id,
        room_id=room,
        name="plan the party",
        objectives=[Objective(description="book a venue"), Objective(description="invite")],
    )
    await agent.store.upsert_goal(goal)
    return goal


async def test_update_goal_marks_objectives_and_closes_the_goal(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    goal = await _goal(agent)
    fake_model.queue("Venue booked.", actions=[("UPDATE_GOAL", {"objective": 1})])
    reply = await agent.handle(say("I booked the venue"))
    assert reply.action_results[0].success, reply.action_results
    stored = await agent.store.get_goal(goal.id)
    assert stored is not None
    assert [o.completed for o in stored.objectives] == [True, False]
    fake_model.queue(
        "All done.", actions=[("UPDATE_GOAL", {"goal": "plan the party", "objective": "invite"})]
    )
    await agent.handle(say("Invitations sent"))
    stored = await agent.store.get_goal(goal.id)
    assert stored is not None
    assert stored.status is GoalStatus.DONE


async def test_update_goal_validation(agent: AgentRuntime, fake_model: FakeModel, say: Say) -> None:
    fake_model.queue("", actions=[("UPDATE_GOAL", {"objective": 1})])
    reply = await agent.handle(say("no goals yet"))
    assert "not offered" in (reply.action_results[0].error or "")
    await _goal(agent)
    fake_model.queue("", actions=[("UPDATE_GOAL", {})])
    fake_model.queue("", actions=[("UPDATE_GOAL", {"objective": 7})])
    fake_model.queue("", actions=[("UPDATE_GOAL", {"goal": "world peace", "objective": 1})])
    fake_model.queue("ok")
    reply = await agent.handle(say("progress?"))
    errors = [r.error or "" for r in reply.action_results]
    assert "give an objective to mark, or a status" in errors[0]
    assert "objectives 1 to 2; 7 is not one of them" in errors[1]
    assert "There is no goal 'world peace'" in errors[2]


async def test_update_goal_of_another_room_needs_the_owner(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    goal = await _goal(agent, room="dm-ada")
    # the goal belongs to dm-ada; Bob's own room sees only agent-wide and his room's goals
    await agent.store.upsert_goal(goal.model_copy(update={"room_id": None}))
    other = goal.model_copy(update={"id": "g2", "room_id": "elsewhere", "name": "secret"})
    await agent.store.upsert_goal(other)
    for role in (Role.MEMBER, Role.ADMIN):
        fake_model.queue("", actions=[("UPDATE_GOAL", {"goal": "g2", "objective": 1})])
        reply = await agent.handle(say("mark it", user="bob", role=role))
        (result,) = reply.action_results
        assert result.data.get("refused") is True
        assert "needs the owner role" in (result.error or "")
        assert "secret" not in (result.error or "")  # nothing about the other room leaks
    stored = await agent.store.get_goal("g2")
    assert stored is not None
    assert not stored.objectives[0].completed
    fake_model.queue("", actions=[("UPDATE_GOAL", {"goal": "g2", "objective": 1})])
    reply = await agent.handle(say("mark it", user="bob", role=Role.OWNER))
    assert reply.action_results[0].success, reply.action_results
    stored = await agent.store.get_goal("g2")
    assert stored is not None
    assert stored.objectives[0].completed


# ---- every action: invalid arguments, and a role requirement set per agent ---------------------

ALL = [
    "REPLY",
    "IGNORE",
    "NONE",
    "CONTINUE",
    "FOLLOW_ROOM",
    "UNFOLLOW_ROOM",
    "MUTE_ROOM",
    "UNMUTE_ROOM",
    "SEND_MESSAGE",
    "UPDATE_GOAL",
]


@pytest.mark.parametrize("name", ALL)
async def test_unknown_arguments_are_refused(
    agent: AgentRuntime, fake_model: FakeModel, say: Say, name: str
) -> None:
    await _goal(agent, room="group-ada")
    fake_model.queue("", actions=[(name, {"bogus": 1})]).queue("ok")
    reply = await agent.handle(say("Testy, do it", group=True, role=Role.OWNER))
    first = reply.action_results[0]
    assert not first.success
    assert f"Invalid arguments for action {name!r}" in (first.error or "")
    assert "bogus: Extra inputs are not permitted" in (first.error or "")
    logs = await agent.store.get_logs(agent_id=agent.agent_id)
    assert logs[-1]["body"]["action"] == name


@pytest.mark.parametrize("name", ALL)
async def test_a_role_set_per_agent_is_enforced_whatever_the_model_answers(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: MemoryStore,
    say: Say,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_ACTION_ROLES", f'{{"{name}": "owner"}}')
    model = FakeModel(default_text='{"facts": []}')
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": model, "small": FakeModel(default_text="{}"), "embedding": None},
    ) as agent:
        await _goal(agent, room="group-ada")
        model.queue("Done.", actions=[(name, {})])
        reply = await agent.handle(say("Testy, do it", group=True, role=Role.ADMIN))
        assert name not in {a.name for a in model.requests[0].actions}
        (result,) = reply.action_results
        assert not result.success
        assert await _state(agent, "group-ada") is ParticipantState.NONE
        facts = await agent.store.count_memories(agent_id=agent.agent_id, type=MemoryType.FACT)
        assert facts == 0
