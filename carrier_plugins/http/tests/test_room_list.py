"""``GET /agents/{agent_id}/rooms``: the caller's rooms, each titled with the start of
the caller's own first message and the time it was last active, newest first, on a
real SQLite file. Another user never sees the caller's rooms or words; a title costs
one bounded read per user and room, then reads by key; a forgotten message takes its
title with it, and no user's words are kept beside the messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from carrier_plugin_http.room_list import TITLE_CHARS, TITLE_WINDOW, shorten
from carrier_plugin_sql.store import SqlStore

from carrier.forgetting import forget
from carrier.types import Content, Memory

TOKENS = {"tok-a": "alice", "tok-b": "bob"}
TRIP = "Planning a trip to Lisbon in May:   what should I pack for the weather there?"


async def post(client: httpx.AsyncClient, text: str, room: str, kind: str = "direct") -> None:
    sent = await client.post(
        "/Testy/message", json={"text": text, "roomId": room, "roomType": kind}
    )
    assert sent.status_code == 200, sent.text


async def listed(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/agents/Testy/rooms", params=params)
    assert response.status_code == 200, response.text
    rooms: list[dict[str, Any]] = response.json()["rooms"]
    return rooms


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rooms.db'}"


async def test_each_user_sees_their_own_rooms_titled_with_their_own_words(
    serve_agents, settings_with, sqlite_url: str
) -> None:
    settings = settings_with(user_tokens=TOKENS)
    async with (
        serve_agents(settings=settings, store=SqlStore(sqlite_url)) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        await post(alice, TRIP, "trip")
        await post(alice, "hi", "herons")
        await post(bob, "Bob's secret plan for the club", "club", "group")
        await post(alice, "alice joins the club", "club", "group")
        await post(bob, "only bob is here", "bobs-room")
        await post(alice, "and what about shoes?", "trip")  # trip is the newest now

        rooms = await listed(alice)
        assert [r["id"] for r in rooms] == ["trip", "club", "herons"]
        titles = [r["title"] for r in rooms]
        assert titles[1:] == ["alice joins the club", "hi"]  # not bob's first words
        assert titles[0].startswith("Planning a trip to Lisbon in May: what should")
        assert titles[0].endswith("…")
        assert len(titles[0]) <= TITLE_CHARS
        times = [r["lastActiveAt"] for r in rooms]
        assert times == sorted(times, reverse=True)
        agent_id = served.runtimes[0].agent_id
        newest = await served.store.get_memories(agent_id=agent_id, room_id="trip", limit=1)
        assert times[0] == newest[0].created_at  # the agent's answer to "shoes"

        bobs = await listed(bob)
        assert [(r["id"], r["title"]) for r in bobs] == [
            ("bobs-room", "only bob is here"),
            ("club", "Bob's secret plan for the club"),
        ]
        assert "alice" not in json.dumps(bobs)
        assert "Lisbon" not in json.dumps(bobs)
        spoof = await bob.get("/agents/Testy/rooms", params={"userId": "alice"})
        assert spoof.status_code == 403


async def test_users_named_by_the_request_see_their_own_words(serve_agents, sqlite_url) -> None:
    async with serve_agents(store=SqlStore(sqlite_url)) as served, served.client() as client:
        await post_as(client, "ann", "ann's words", "shared", "group")
        await post_as(client, "ben", "ben's words", "shared", "group")
        ann = await listed(client, userId="ann")
        ben = await listed(client, userId="ben")
        assert [(r["id"], r["title"]) for r in ann] == [("shared", "ann's words")]
        assert [(r["id"], r["title"]) for r in ben] == [("shared", "ben's words")]
        assert ben[0]["lastActiveAt"] == ann[0]["lastActiveAt"] is not None
        assert await listed(client, userId="cy") == []


async def post_as(client: httpx.AsyncClient, user: str, text: str, room: str, kind: str) -> None:
    body = {"text": text, "roomId": room, "roomType": kind, "userId": user}
    sent = await client.post("/Testy/message", json=body)
    assert sent.status_code == 200, sent.text


def count_reads(store: Any) -> list[int]:
    """Record the ``limit`` of every ``get_memories`` call of ``store`` (a spy: the real
    method still answers)."""
    limits: list[int] = []
    real = store.get_memories

    async def spied(**kwargs: Any) -> list[Memory]:
        limits.append(kwargs.get("limit", 50))
        return await real(**kwargs)  # type: ignore[no-any-return]

    store.get_memories = spied
    return limits


async def test_a_title_is_worked_out_once_then_read_by_key(serve_agents, sqlite_url) -> None:
    async with serve_agents(store=SqlStore(sqlite_url)) as served, served.client() as client:
        runtime = served.runtimes[0]
        for index in range(TITLE_WINDOW + 10):  # a long room: more messages than the window
            await served.store.create_memory(
                Memory(
                    agent_id=runtime.agent_id,
                    entity_id="ann",
                    room_id="long",
                    content=Content(text=f"message {index}"),
                    created_at=1_000_000 + index,
                )
            )
        await post_as(client, "ann", "the newest one", "long", "direct")
        limits = count_reads(served.store)
        (first,) = await listed(client, userId="ann")
        assert first["title"] == "message 11"  # the oldest of the newest TITLE_WINDOW of hers
        assert max(limits) == TITLE_WINDOW
        limits.clear()
        await post_as(client, "ann", "another one", "long", "direct")
        limits.clear()
        (again,) = await listed(client, userId="ann")
        assert again["title"] == "message 11"  # stable as the room grows
        assert again["lastActiveAt"] > first["lastActiveAt"]
        assert limits == [1]  # the newest message only: the title was read by its id


async def test_a_forgotten_message_takes_its_title_with_it(
    serve_agents, settings_with, sqlite_url
) -> None:
    settings = settings_with(user_tokens=TOKENS)
    async with (
        serve_agents(settings=settings, store=SqlStore(sqlite_url)) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        agent_id = served.runtimes[0].agent_id
        await post(alice, "my first secret", "r")
        await post(alice, "my second words", "r")
        await post(bob, "bob's own room", "b")
        assert [r["title"] for r in await listed(alice)] == ["my first secret"]
        kept = json.dumps(await served.store.list_cache("plugin:http:"))
        assert "secret" not in kept  # only message ids are remembered

        first = (
            await served.store.get_memories(
                agent_id=agent_id, room_id="r", entity_id="alice", limit=2
            )
        )[0]
        assert await served.store.delete_memory(first.id)  # an operator deletes it
        assert [r["title"] for r in await listed(alice)] == ["my second words"]

        gone = await alice.delete(f"/agents/{agent_id}/rooms/r/memories?confirm=true")
        assert gone.status_code == 200, gone.text
        assert [(r["id"], r["title"]) for r in await listed(alice)] == [("r", None)]
        await forget(served.store, agent_id=agent_id, entity_id="bob", room_id=None)
        assert [(r["id"], r["title"]) for r in await listed(bob)] == [("b", None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  hello \n  world ", "hello world"),
        ("\n\t ", None),
        ("x" * 80, "x" * (TITLE_CHARS - 1) + "…"),
        ("word " * 30, ("word " * 11).strip() + "…"),
    ],
)
def test_titles_are_one_short_line(text: str, expected: str | None) -> None:
    assert shorten(text) == expected
    assert expected is None or len(expected) <= TITLE_CHARS


def test_the_title_key_keeps_users_and_rooms_apart() -> None:
    from carrier_plugin_http.room_list import _title_key

    keys: Callable[[str, str], str] = _title_key
    assert keys("a", "b:r") != keys("a:b", "r")
