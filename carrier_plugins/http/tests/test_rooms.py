"""Rooms over HTTP: each user's own default room, the agent's reserved rooms refused,
direct rooms kept to their one user (also when two users race for a new room id on a
real SQLite file), and the memories endpoint showing a user only messages."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier_plugin_sql.store import SqlStore

from carrier.character import Character
from carrier.types import Attachment, Content, Memory, MemoryType, Participant

TOKENS = {"tok-a": "alice", "tok-b": "bob"}


async def test_each_user_without_a_room_id_gets_their_own_room(serve_agents, settings_with) -> None:
    settings = settings_with(user_tokens=TOKENS)
    async with (
        serve_agents(settings=settings) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        agent_id = served.runtimes[0].agent_id
        for client in (alice, bob):  # as ElizaOS's direct client sends it: no roomId
            sent = await client.post("/Testy/message", data={"text": "hello", "userName": "x"})
            assert sent.status_code == 200, sent.text
        rooms = {user: await served.store.get_rooms_for_entity(user) for user in ("alice", "bob")}
        assert rooms == {
            "alice": [f"default-room-{agent_id}-alice"],
            "bob": [f"default-room-{agent_id}-bob"],
        }
        own = await alice.get(f"/agents/Testy/rooms/default-room-{agent_id}-alice/memories")
        assert [m["entityId"] for m in own.json()["memories"]] == ["alice", agent_id]
        other = await alice.get(f"/agents/Testy/rooms/default-room-{agent_id}-bob/memories")
        assert other.status_code == 403


async def test_users_named_by_the_request_each_get_their_own_room(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        agent_id = served.runtimes[0].agent_id
        for user in ("ann", "ben"):
            sent = await client.post(
                f"/{agent_id}/message/stream", data={"text": "hi", "userId": user}
            )
            assert "event: done" in sent.text, sent.text
        for user in ("ann", "ben"):
            assert await served.store.get_rooms_for_entity(user) == [
                f"default-room-{agent_id}-{user}"
            ]


async def test_nobody_takes_over_another_users_default_room(serve_agents, settings_with) -> None:
    settings = settings_with(user_tokens=TOKENS)
    async with (
        serve_agents(settings=settings) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        agent_id = served.runtimes[0].agent_id
        squat = await alice.post(
            "/Testy/message", json={"text": "mine now", "roomId": f"default-room-{agent_id}-bob"}
        )
        assert squat.status_code == 403
        assert "default room" in squat.json()["error"]
        assert (await bob.post("/Testy/message", json={"text": "hi"})).status_code == 200


def reserved_rooms(agent_id: str) -> list[str]:
    return [
        f"knowledge-{agent_id}",
        f"autonomous-{agent_id}",
        f"default-room-{agent_id}",  # the default room every user once shared
        agent_id,
    ]


async def seed(served: Any, room_id: str, *, user: str = "alice") -> tuple[str, str]:
    """A message with a stored file in ``room_id``, and ``user`` as a participant (as
    the shared default room had them); answers (memory id, attachment id)."""
    agent_id = served.runtimes[0].agent_id
    attachment = Attachment(id=str(uuid.uuid4()), title="a.txt", source="http")
    folder = served.settings.upload_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{attachment.id}-a.txt").write_bytes(b"the agent's own")
    memory = Memory(
        agent_id=agent_id,
        entity_id=user,
        room_id=room_id,
        content=Content(text="kept for the agent", attachments=[attachment]),
    )
    await served.store.create_memory(memory)
    await served.store.upsert_participant(Participant(room_id=room_id, entity_id=user))
    return memory.id, attachment.id


@pytest.mark.parametrize("kind", range(4), ids=["knowledge", "autonomous", "old default", "agent"])
async def test_the_agents_reserved_rooms_are_refused(serve_agents, kind: int) -> None:
    async with serve_agents() as served, served.client() as client:
        agent_id = served.runtimes[0].agent_id
        room = reserved_rooms(agent_id)[kind]
        memory_id, attachment_id = await seed(served, room)
        for path in ("/Testy/message", "/Testy/message/stream"):
            posted = await client.post(path, json={"text": "x", "roomId": room, "userId": "alice"})
            assert posted.status_code == 403, posted.text
            assert "reserved" in posted.json()["error"]
        base = f"/agents/Testy/rooms/{room}/memories"
        read = await client.get(base, params={"userId": "alice"})
        assert read.status_code == 403
        assert "kept for the agent" not in read.text
        download = await client.get(
            f"{base}/{memory_id}/attachments/{attachment_id}", params={"userId": "alice"}
        )
        assert download.status_code == 403
        assert b"the agent's own" not in download.content
        stored = await served.store.get_memories(agent_id=agent_id, room_id=room)
        assert [m.content.text for m in stored] == ["kept for the agent"]


async def test_nobody_speaks_or_reads_as_an_agent(serve_agents, settings_with) -> None:
    agents = [Character(name="Nova"), Character(name="Ada")]
    async with serve_agents(agents) as served, served.client() as client:
        nova, ada = (r.agent_id for r in served.runtimes)
        sent = await client.post("/Nova/message", json={"text": "hi", "roomId": "r"})
        assert sent.status_code == 200
        for agent, as_user in (("Nova", nova), ("Nova", ada), ("Ada", nova)):
            posted = await client.post(
                f"/{agent}/message", json={"text": "I am the agent", "userId": as_user}
            )
            assert posted.status_code == 403, posted.text
            assert "agent" in posted.json()["error"]
            read = await client.get(f"/agents/{agent}/rooms/r/memories", params={"userId": as_user})
            assert read.status_code == 403
    async with serve_agents() as served:
        agent_id = served.runtimes[0].agent_id
    settings = settings_with(user_tokens={"tok-x": agent_id})  # a token for the agent's id
    async with serve_agents(settings=settings) as served, served.client("tok-x") as impostor:
        posted = await impostor.post("/Testy/message", json={"text": "hi"})
        assert posted.status_code == 403


async def test_a_group_room_takes_several_users_a_direct_one_does_not(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        group = {"text": "hi all", "roomId": "club", "roomType": "group"}
        assert (await client.post("/Testy/message", json={**group, "userId": "ann"})).is_success
        joined = await client.post("/Testy/message", json={**group, "userId": "ben"})
        assert joined.status_code == 200, joined.text
        page = await client.get("/agents/Testy/rooms/club/memories", params={"userId": "ben"})
        assert [m["entityId"] for m in page.json()["memories"]].count("ann") == 1
        outsider = await client.get("/agents/Testy/rooms/club/memories", params={"userId": "cy"})
        assert outsider.status_code == 403
        direct = {"text": "just us", "roomId": "dm", "userId": "ann"}
        assert (await client.post("/Testy/message", json=direct)).status_code == 200
        barged = await client.post("/Testy/message", json={**direct, "userId": "ben"})
        assert barged.status_code == 403
        assert "another user" in barged.json()["error"]
        bad = await client.post("/Testy/message", json={**group, "roomType": "channel"})
        assert bad.status_code == 400
        assert "roomType" in bad.json()["error"]


def outcome(response: httpx.Response, sse: Any) -> int:
    """The status a message got: the HTTP status, or a stream's error event's."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.status_code
    name, data = sse(response.text)[-1]
    return int(data["status"]) if name == "error" else 200


_arrived: dict[str, int] = {}
_both_looked: dict[str, asyncio.Event] = {}


def hold_first_lookups(store: Any, rooms: list[str]) -> None:
    """Make each room's first two ``get_room`` calls (the two requests' early checks,
    on any of the servers) wait for each other, so both requests see no room yet and
    only the store's atomic ``create_room`` can tell them apart."""
    original = store.get_room
    _arrived.clear()
    _both_looked.clear()

    async def get_room(room_id: str) -> Any:
        found = await original(room_id)
        if room_id in rooms:
            _arrived[room_id] = _arrived.get(room_id, 0) + 1
            event = _both_looked.setdefault(room_id, asyncio.Event())
            if _arrived[room_id] == 2:
                event.set()
            elif _arrived[room_id] < 2:
                await asyncio.wait_for(event.wait(), timeout=5)
        return found

    store.get_room = get_room


@pytest.mark.parametrize("servers", [1, 2], ids=["one server", "two servers"])
async def test_two_users_racing_for_a_new_room_never_both_get_in(
    serve_agents, settings_with, sse, tmp_path: Path, servers: int
) -> None:
    """Alice and Bob post into the same new room id at once, over real HTTP, on one
    SQLite file; with two servers (two runtimes) nothing but the store orders them."""
    url = f"sqlite:///{tmp_path / 'carrier.db'}"
    settings = settings_with(user_tokens=TOKENS)
    rooms = [f"race-{index}" for index in range(8)]
    async with AsyncExitStack() as stack:
        served = [
            await stack.enter_async_context(serve_agents(settings=settings, store=SqlStore(url)))
            for _ in range(servers)
        ]
        for each in served:
            hold_first_lookups(each.store, rooms)
        alice = await stack.enter_async_context(served[0].client("tok-a"))
        bob = await stack.enter_async_context(served[-1].client("tok-b"))

        async def post(client: httpx.AsyncClient, room: str, index: int) -> int:
            path = "/Testy/message/stream" if index % 2 else "/Testy/message"
            sent = await client.post(path, json={"text": "mine", "roomId": room})
            return outcome(sent, sse)

        results = await asyncio.gather(
            *(post(client, room, i) for i, room in enumerate(rooms) for client in (alice, bob))
        )
        store = served[0].store
        agent_id = served[0].runtimes[0].agent_id
        for index, room in enumerate(rooms):
            statuses = results[2 * index : 2 * index + 2]
            assert sorted(statuses) == [200, 403], (room, statuses)
            winner, loser = ("alice", "bob") if statuses[0] == 200 else ("bob", "alice")
            stored = await store.get_room(room)
            assert stored is not None
            assert stored.owner_id == winner
            messages = await store.get_memories(agent_id=agent_id, room_id=room)
            senders = {m.entity_id for m in messages}
            assert winner in senders
            assert loser not in senders  # refused before anything was stored
            assert await store.get_participant(room, loser) is None


async def test_the_memories_endpoint_shows_messages_only(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        agent_id = served.runtimes[0].agent_id
        sent = await client.post("/Testy/message", json={"text": "hi", "roomId": "mine"})
        assert sent.status_code == 200
        for kind in (MemoryType.FACT, MemoryType.REFLECTION, MemoryType.DOCUMENT):
            await served.store.create_memory(
                Memory(
                    agent_id=agent_id,
                    entity_id="user",
                    room_id="mine",
                    type=kind,
                    content=Content(text=f"a {kind.value} the agent keeps"),
                )
            )
        await served.store.create_memory(
            Memory(
                agent_id=agent_id,
                entity_id=agent_id,
                room_id="mine",
                content=Content(
                    text="an answer",
                    thought="the user seems gullible",
                    actions=["REPLY"],
                    attachments=[Attachment(id="a1", title="t", note="internal note")],
                    secret_field="from a plugin",
                ),
                metadata={"internal": True, "role": "member"},
            )
        )
        page = (await client.get("/agents/Testy/rooms/mine/memories")).json()
        texts = [m["content"]["text"] for m in page["memories"]]
        assert texts == ["hi", "hello from the agent", "an answer"]
        for memory in page["memories"]:
            assert set(memory) == {"id", "entityId", "roomId", "createdAt", "content"}
            assert set(memory["content"]) <= {"text", "attachments", "inReplyTo", "source"}
        assert page["memories"][-1]["content"]["attachments"] == [{"id": "a1", "title": "t"}]
        for hidden in ("keeps", "gullible", "internal", "secret_field", "REPLY"):
            assert hidden not in str(page)
