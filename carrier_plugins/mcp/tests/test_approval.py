"""MCP tools that wait for a person's approval (``requireApproval``), against the
SDK-written test server over stdio (a real subprocess) and Streamable HTTP on 127.0.0.1,
with the SQLite store. Calls are counted on the server's side (its ``tally`` tool)."""

from __future__ import annotations

from typing import Any

import pytest
from carrier_plugin_mcp.actions import McpTools
from carrier_plugin_mcp.testing import server_entry

from carrier.errors import AccessError, ActionError, InputError
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, Role

from .conftest import AgentFactory, HttpServer, configure


def msg(text: str, *, user: str, role: Role = Role.MEMBER) -> IncomingMessage:
    return IncomingMessage(text=text, user_id=user, room_id=f"room-{user}", role=role)


async def tallied(runtime: AgentRuntime, name: str) -> str:
    """The server's own count of ``tally`` calls under ``name`` (read, not counted)."""
    (source,) = [s for s in runtime.actions.sources if isinstance(s, McpTools)]
    (connection,) = source.connections
    result = await connection.call("tally", {"name": name, "add": 0})
    return str(result.content[0].text)  # type: ignore[union-attr]


async def said_in(runtime: AgentRuntime, room_id: str) -> list[str]:
    found = await runtime.store.get_memories(agent_id=runtime.agent_id, room_id=room_id)
    return [m.content.text or "" for m in found]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_an_approved_tool_is_called_once_and_the_model_continues(
    monkeypatch: pytest.MonkeyPatch,
    agent: AgentFactory,
    fake_model: FakeModel,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    extra: dict[str, Any] = {"requireApproval": ["tal*"]}
    if transport == "stdio":
        entry = server_entry(**extra)
    else:
        server: HttpServer = request.getfixturevalue("http_server")
        entry = {"url": server.url, **extra}
    configure(monkeypatch, {"test": entry})
    async with agent() as runtime:
        fake_model.queue("Counting it.", actions=[("test__tally", {"name": "refund"})])
        asked = await runtime.handle(msg("count a refund", user="alice"))
        # Nothing reached the server; the notice is the message's reply.
        assert await tallied(runtime, "refund") == "refund: 0"
        (notice,) = asked.responses
        assert notice.id == f"{asked.message.id}-{runtime.agent_id}"
        (pending,) = await runtime.approvals.list()
        assert pending.id in (notice.content.text or "")
        assert pending.action == "test__tally"
        assert pending.arguments == {"name": "refund"}  # the tool's names, nothing unset
        assert (pending.requester_id, pending.approver_role) == ("alice", Role.ADMIN)

        # Members cannot approve: neither another member nor the requester.
        for member in ("bob", "alice"):
            with pytest.raises(AccessError, match="needs the admin role"):
                await runtime.approvals.decide(
                    pending.id, approve=True, by=member, role=Role.MEMBER
                )
        assert [a.id for a in await runtime.approvals.list()] == [pending.id]

        # A tool the setting does not match runs at once, for another user.
        fake_model.queue("Adding.", actions=[("test__add", {"a": 2, "b": 3})])
        fake_model.queue("It is 5.")
        added = await runtime.handle(msg("add 2 and 3", user="bob"))
        (result,) = added.action_results
        assert (result.success, result.text) == (True, "5")
        assert added.texts[-1] == "It is 5."
        assert len(await runtime.approvals.list()) == 1
        assert await tallied(runtime, "refund") == "refund: 0"

        # An admin approves: the tool runs once and the model continues from its result.
        fake_model.queue("The refund count is 1.")
        decided = await runtime.approvals.decide(
            pending.id, approve=True, by="carol", role=Role.ADMIN
        )
        assert decided.done
        assert await tallied(runtime, "refund") == "refund: 1"
        assert "refund: 1" in str(fake_model.requests[-1].model_dump())
        answer = await runtime.store.get_memory(pending.response_id)
        assert answer is not None
        assert answer.content.text == "The refund count is 1."
        assert answer.room_id == asked.message.room_id
        assert "The refund count is 1." not in await said_in(runtime, added.message.room_id)

        # Decided once: a second decision and a second resume change nothing.
        with pytest.raises(ActionError, match="approved by carol already"):
            await runtime.approvals.decide(pending.id, approve=False, by="dan", role=Role.OWNER)
        assert await runtime.approvals.resume(decided) is False
        assert await tallied(runtime, "refund") == "refund: 1"
        assert await runtime.approvals.list() == []


async def test_every_tool_of_a_server_and_an_owner_approver(
    monkeypatch: pytest.MonkeyPatch, agent: AgentFactory, fake_model: FakeModel
) -> None:
    """``requireApproval: true`` holds for every tool; ``approverRole`` raises who decides;
    edited arguments are validated again; a rejection reaches the model, not the server."""
    configure(
        monkeypatch,
        {"test": server_entry(requireApproval=True, approverRole="owner")},
    )
    async with agent() as runtime:
        (source,) = [s for s in runtime.actions.sources if isinstance(s, McpTools)]
        assert len(source.actions()) == 9
        assert all(a.requires_approval for a in source.actions())
        fake_model.queue("Refusing.", actions=[("test__tally", {"name": "refused"})])
        await runtime.handle(msg("count a refusal", user="alice"))
        fake_model.queue("Counting.", actions=[("test__tally", {"name": "visits"})])
        await runtime.handle(msg("count my visit", user="bob", role=Role.ADMIN))
        adding, counting = await runtime.approvals.list()
        assert (adding.requester_id, adding.approver_role) == ("alice", Role.OWNER)
        assert (counting.requester_id, counting.requester_role) == ("bob", Role.ADMIN)
        with pytest.raises(AccessError, match="needs the owner role"):
            await runtime.approvals.decide(counting.id, approve=True, by="bob", role=Role.ADMIN)

        with pytest.raises(InputError, match="it stays pending"):
            await runtime.approvals.decide(
                counting.id, approve=True, by="root", role=Role.OWNER, arguments={"name": 5}
            )
        assert await tallied(runtime, "visits-edited") == "visits-edited: 0"
        fake_model.queue("Counted.")
        await runtime.approvals.decide(
            counting.id,
            approve=True,
            by="root",
            role=Role.OWNER,
            arguments={"name": "visits-edited", "add": 2},
        )
        assert await tallied(runtime, "visits") == "visits: 0"
        assert await tallied(runtime, "visits-edited") == "visits-edited: 2"

        fake_model.queue("Alright, I will not count it.")
        rejected = await runtime.approvals.decide(
            adding.id, approve=False, by="root", role=Role.OWNER, reason="not now"
        )
        assert rejected.done
        assert "root rejected it (not now)" in str(fake_model.requests[-1].model_dump())
        answer = await runtime.store.get_memory(adding.response_id)
        assert answer is not None
        assert answer.content.text == "Alright, I will not count it."
        assert await tallied(runtime, "refused") == "refused: 0"
        assert await runtime.approvals.list() == []
