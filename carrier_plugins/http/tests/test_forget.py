"""Forgetting over HTTP: ``DELETE .../rooms/{room}/memories?confirm=true`` deletes the
caller's memories in that room, ``DELETE /agents/{agent}/memories?confirm=true`` in
every room; without ``confirm`` nothing goes; another user's memories always stay."""

from __future__ import annotations

TOKENS = {"tok-a": "alice", "tok-b": "bob"}


async def test_a_user_forgets_a_room_then_everything(serve_agents, settings_with) -> None:
    settings = settings_with(user_tokens=TOKENS)
    async with (
        serve_agents(settings=settings) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        agent_id = served.runtimes[0].agent_id
        for client, room in ((alice, "a1"), (alice, "a2"), (bob, "b1")):
            sent = await client.post(
                "/Testy/message", data={"text": f"my secret {room}", "roomId": room}
            )
            assert sent.status_code == 200, sent.text
        refused = await alice.delete(f"/agents/{agent_id}/rooms/a1/memories")
        assert refused.status_code == 400
        assert "confirm=true" in refused.text
        stranger = await bob.delete(f"/agents/{agent_id}/rooms/a1/memories?confirm=true")
        assert stranger.status_code == 403

        gone = await alice.delete(f"/agents/{agent_id}/rooms/a1/memories?confirm=true")
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"userId": "alice", "roomId": "a1", "deleted": 2}
        page = await alice.get(f"/agents/{agent_id}/rooms/a2/memories")
        assert next(m["content"]["text"] for m in page.json()["memories"]) == "my secret a2"

        everything = await alice.delete(f"/agents/{agent_id}/memories?confirm=true")
        assert everything.json()["deleted"] == 2
        left = await served.store.get_memories(agent_id=agent_id, entity_id="alice", limit=10)
        assert left == []
        bobs = await bob.get(f"/agents/{agent_id}/rooms/b1/memories")
        assert next(m["content"]["text"] for m in bobs.json()["memories"]) == "my secret b1"
