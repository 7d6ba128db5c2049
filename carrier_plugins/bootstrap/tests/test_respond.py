"""Should-respond: always in direct rooms; in groups when addressed, else the small
model decides; never in muted rooms."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, ParticipantState, Role

Say = Callable[..., IncomingMessage]


async def test_direct_rooms_always_answer_without_asking(
    agent: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    fake_model.queue("Hello.")
    reply = await agent.handle(say("just chatting, no name here"))
    assert reply.texts == ["Hello."]
    assert small_model.requests == []


async def test_group_chatter_is_ignored_and_a_mention_is_answered(
    agent: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    small_model.queue("IGNORE")
    chatter = await agent.handle(say("did anyone see the game last night?", group=True))
    assert chatter.ignored
    assert chatter.texts == []
    assert fake_model.requests == []  # the large model never ran
    assert "RESPOND" in (small_model.requests[0].system or "")

    fake_model.queue("Hi Ada!")
    asked = len(small_model.requests)
    mention = await agent.handle(say("Testy, what do you think?", group=True))
    assert mention.texts == ["Hi Ada!"]
    assert len(small_model.requests) == asked  # a mention needs no model call


@pytest.mark.parametrize(
    ("text", "metadata"),
    [
        ("@testy ping", {}),
        ("hey TESTY!", {}),
        ("ping", {"mentions": ["AGENT"]}),
        ("and then?", {"in_reply_to": "m1-AGENT"}),
    ],
)
async def test_ways_of_addressing_the_agent(
    agent: AgentRuntime,
    fake_model: FakeModel,
    small_model: FakeModel,
    say: Say,
    text: str,
    metadata: dict[str, object],
) -> None:
    for key, value in list(metadata.items()):
        if isinstance(value, list):
            metadata[key] = [agent.agent_id if v == "AGENT" else v for v in value]
        elif isinstance(value, str):
            metadata[key] = value.replace("AGENT", agent.agent_id)
    agent.character.username = "testy"
    fake_model.queue("Yes?")
    reply = await agent.handle(say(text, group=True, metadata=metadata))
    assert reply.texts == ["Yes?"]
    assert small_model.requests == []


async def test_the_small_model_decides_when_the_conversation_is_for_the_agent(
    agent: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    small_model.queue("RESPOND")
    fake_model.queue("Good question.")
    reply = await agent.handle(say("could the bot explain that again?", group=True))
    assert reply.texts == ["Good question."]


@pytest.mark.parametrize(
    ("answer", "responds"),
    [
        ("RESPOND", True),
        ("Respond.", True),
        ("[RESPOND]", True),
        ("DON'T RESPOND", False),
        ("Do not respond", False),
        ("IGNORE", False),
        ("STOP", False),
        ("I think I should respond to this one", False),
    ],
)
async def test_the_small_models_decision_is_parsed_not_searched(
    agent: AgentRuntime,
    fake_model: FakeModel,
    small_model: FakeModel,
    say: Say,
    answer: str,
    responds: bool,
) -> None:
    small_model.queue(answer)
    fake_model.queue("Here I am.")
    reply = await agent.handle(say("is anyone around?", group=True))
    assert reply.ignored is not responds
    assert reply.texts == (["Here I am."] if responds else [])


async def test_a_word_containing_the_name_is_not_a_mention(
    agent: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    small_model.queue("IGNORE")
    reply = await agent.handle(say("the testytool is broken", group=True))
    assert reply.ignored
    assert len(small_model.requests) == 1


async def test_mention_policy_skips_the_model_except_in_followed_rooms(
    bootstrap_host, character, sql_store, say: Say, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARRIER_BOOTSTRAP_GROUP_POLICY", "mention")
    large, small = FakeModel(), FakeModel(default_text="{}")
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={"large": large, "small": small, "embedding": None},
    ) as agent:
        assert (await agent.handle(say("chatter", group=True))).ignored
        assert small.requests == []
        await agent.set_participant_state("group-ada", agent.agent_id, ParticipantState.FOLLOWED)
        small.queue("RESPOND")
        large.queue("Joining in.")
        reply = await agent.handle(say("more chatter", group=True))
        assert reply.texts == ["Joining in."]
        assert len(small.requests) == 1


async def test_muted_rooms_never_answer_even_when_mentioned(
    agent: AgentRuntime, fake_model: FakeModel, small_model: FakeModel, say: Say
) -> None:
    fake_model.queue("ok")
    await agent.handle(say("Testy, hi", group=True))
    await agent.set_participant_state("group-ada", agent.agent_id, ParticipantState.MUTED)
    reply = await agent.handle(say("Testy! answer me", group=True, role=Role.OWNER))
    assert reply.ignored
    assert len(fake_model.requests) == 1
    assert small_model.requests == []


async def test_the_agents_own_messages_are_ignored_outside_its_self_room(
    agent: AgentRuntime, fake_model: FakeModel, say: Say
) -> None:
    reply = await agent.handle(say("Testy said this", user=agent.agent_id, group=True))
    assert reply.ignored
    assert fake_model.requests == []
