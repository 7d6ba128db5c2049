"""Every endpoint over real HTTP: uvicorn on 127.0.0.1, httpx as the client."""

from __future__ import annotations

from pathlib import Path

import pytest

import carrier
from carrier.character import Character
from carrier.errors import ModelRejectedError, TransientModelError
from carrier.protocols import Action
from carrier.testing import FakeModel
from carrier.types import ActionResult


class Ping(Action):
    name = "PING"
    description = "Answer pong."

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        return ActionResult(name=self.name, text="pong")


class PingPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
        actions.add("PING", Ping)


async def test_elizaos_form_data_with_a_file(serve_agents, tmp_path: Path) -> None:
    async with serve_agents() as served, served.client() as client:
        agent = served.runtimes[0]
        response = await client.post(
            f"/{agent.agent_id}/message",
            data={"text": "read this", "roomId": "room-1", "userId": "alice", "userName": "Al"},
            files={"file": ("notes.txt", b"the secret word is plover", "text/plain")},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [c["text"] for c in body] == ["hello from the agent"]
        assert body[0]["user"] == "Testy"
        assert body[0]["action"] is None
        assert body[0]["inReplyTo"]
        (message,) = [
            m
            for m in await served.store.get_memories(agent_id=agent.agent_id, room_id="room-1")
            if m.entity_id == "alice"
        ]
        (attachment,) = message.content.attachments
        assert attachment.title == "notes.txt"
        assert attachment.text == "the secret word is plover"
        assert attachment.size == 25
        assert attachment.url == (
            f"/agents/{agent.agent_id}/rooms/room-1/memories/{message.id}"
            f"/attachments/{attachment.id}"
        )
        upload_dir = served.settings.upload_dir
        assert upload_dir is not None
        (stored,) = upload_dir.iterdir()
        assert stored.read_bytes() == b"the secret word is plover"
        assert message.metadata["user_name"] == "Al"


async def test_json_message_defaults_and_agent_name_lookup(serve_agents) -> None:
    model = FakeModel().queue("Sure.", actions=["REPLY"])
    async with serve_agents(model=model) as served, served.client() as client:
        agent = served.runtimes[0]
        response = await client.post("/tEsTy/message", json={"text": "hi"})
        assert response.status_code == 200, response.text
        assert response.json()[0]["text"] == "Sure."
        room = f"default-room-{agent.agent_id}-user"  # the user's own default room
        assert await served.store.get_participant(room, "user") is not None
        urlencoded = await client.post(f"/{agent.agent_id}/message", data={"text": "again"})
        assert urlencoded.status_code == 200


async def test_agents_list_and_detail(serve_agents) -> None:
    nova = Character(name="Nova", username="nova_bot", bio=["Helpful."])
    ada = Character(name="Ada", settings={"HIDDEN": "x"}, secrets={"API_KEY": "s3cret"})
    async with serve_agents([nova, ada]) as served, served.client() as client:
        listing = (await client.get("/agents")).json()["agents"]
        assert [a["name"] for a in listing] == ["Nova", "Ada"]
        detail = await client.get("/agents/nova_bot")
        assert detail.status_code == 200
        assert detail.json()["bio"] == ["Helpful."]
        ada_detail = await client.get(f"/agents/{served.runtimes[1].agent_id}")
        assert "s3cret" not in ada_detail.text
        assert "HIDDEN" not in ada_detail.text
        missing = await client.get("/agents/nobody")
        assert missing.status_code == 404
        assert "nobody" in missing.json()["error"]


async def test_two_agents_keep_separate_memories(serve_agents) -> None:
    model = FakeModel().queue("I am Nova.").queue("I am Ada.")
    nova, ada = Character(name="Nova"), Character(name="Ada")
    async with serve_agents([nova, ada], model=model) as served, served.client() as client:
        for name, text in (("Nova", "hello nova"), ("Ada", "hello ada")):
            sent = await client.post(f"/{name}/message", json={"text": text, "roomId": "shared"})
            assert sent.status_code == 200, sent.text
        pages = {}
        for runtime in served.runtimes:
            page = await client.get(f"/agents/{runtime.agent_id}/rooms/shared/memories")
            assert page.status_code == 200, page.text
            pages[runtime.character.name] = [m["content"]["text"] for m in page.json()["memories"]]
        assert pages == {"Nova": ["hello nova", "I am Nova."], "Ada": ["hello ada", "I am Ada."]}


async def test_a_user_cannot_read_or_join_another_users_room(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        sent = await client.post(
            "/Testy/message", json={"text": "private", "roomId": "a-room", "userId": "alice"}
        )
        assert sent.status_code == 200
        own = await client.get("/agents/Testy/rooms/a-room/memories", params={"userId": "alice"})
        assert own.status_code == 200
        assert len(own.json()["memories"]) == 2
        peek = await client.get("/agents/Testy/rooms/a-room/memories", params={"userId": "bob"})
        assert peek.status_code == 403
        assert "bob" in peek.json()["error"]
        join = await client.post(
            "/Testy/message", json={"text": "let me in", "roomId": "a-room", "userId": "bob"}
        )
        assert join.status_code == 403


async def test_per_user_tokens_fix_the_user(serve_agents, settings_with) -> None:
    settings = settings_with(user_tokens={"tok-a": "alice", "tok-b": "bob"})
    async with (
        serve_agents(settings=settings) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
    ):
        sent = await alice.post("/Testy/message", json={"text": "mine", "roomId": "r-a"})
        assert sent.status_code == 200
        room = await served.store.get_participant("r-a", "alice")
        assert room is not None
        spoof = await bob.get("/agents/Testy/rooms/r-a/memories", params={"userId": "alice"})
        assert spoof.status_code == 403
        assert (await bob.get("/agents/Testy/rooms/r-a/memories")).status_code == 403
        assert (await alice.get("/agents/Testy/rooms/r-a/memories")).status_code == 200
        assert (await alice.get("/me")).json() == {"userId": "alice", "role": "member"}
        assert (await bob.get("/me")).json() == {"userId": "bob", "role": "member"}


async def test_me_is_nobody_in_particular_without_a_per_user_token(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        response = await client.get("/me")
        assert response.status_code == 200
        assert response.json() == {"userId": None, "role": "member"}


async def test_memories_are_paged_oldest_first(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        for index in range(3):
            sent = await client.post("/Testy/message", json={"text": f"m{index}", "roomId": "p"})
            assert sent.status_code == 200
        first = (await client.get("/agents/Testy/rooms/p/memories", params={"limit": 4})).json()
        texts = [m["content"]["text"] for m in first["memories"]]
        assert texts == ["m1", "hello from the agent", "m2", "hello from the agent"]
        assert first["nextBefore"] is not None
        second = (
            await client.get(
                "/agents/Testy/rooms/p/memories", params={"limit": 4, "before": first["nextBefore"]}
            )
        ).json()
        older = [m["content"]["text"] for m in second["memories"]]
        assert older == ["m0", "hello from the agent"]
        assert second["nextBefore"] is None
        assert all(
            set(m) == {"id", "entityId", "roomId", "createdAt", "content"}
            for m in first["memories"]
        )


async def test_a_model_failure_is_503_and_the_message_is_kept(serve_agents) -> None:
    model = FakeModel().queue(error=ModelRejectedError("the model refused"))
    async with serve_agents(model=model) as served, served.client() as client:
        response = await client.post("/Testy/message", json={"text": "hi", "roomId": "down"})
        assert response.status_code == 503
        body = response.json()
        assert "could not answer" in body["error"]
        assert "refused" not in body["error"]  # the model's own words stay in the log
        assert body["requestId"] == response.headers["x-request-id"]
        assert body["messageId"]
        kept = await served.store.get_memories(agent_id=served.runtimes[0].agent_id, room_id="down")
        assert [m.content.text for m in kept] == ["hi"]


async def test_health_readiness_and_openapi(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "agents": 1}
        schema = (await client.get("/openapi.json")).json()
        assert "/{agent_id}/message" in schema["paths"]
        body = schema["paths"]["/{agent_id}/message"]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data"} <= set(body)
        page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "message/stream" in page.text


async def test_cors_is_off_by_default_and_on_when_configured(serve_agents, http_settings) -> None:
    preflight = {"Origin": "http://example.test", "Access-Control-Request-Method": "POST"}
    async with serve_agents() as served, served.client() as client:
        response = await client.get("/agents", headers={"Origin": "http://example.test"})
        assert "access-control-allow-origin" not in response.headers
        options = await client.options("/Testy/message", headers=preflight)
        assert "access-control-allow-origin" not in options.headers
    allowed = http_settings.model_copy(update={"cors_origins": ["http://example.test"]})
    async with serve_agents(settings=allowed) as served, served.client() as client:
        options = await client.options("/Testy/message", headers=preflight)
        assert options.headers["access-control-allow-origin"] == "http://example.test"


async def test_rate_limit_answers_429_with_retry_after(serve_agents, http_settings) -> None:
    limited = http_settings.model_copy(update={"rate_limit_per_minute": 6, "rate_limit_burst": 2})
    async with serve_agents(settings=limited) as served, served.client() as client:
        codes = [(await client.get("/agents")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        blocked = await client.get("/agents")
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        assert "Too many requests" in blocked.json()["error"]
        assert (await client.get("/health")).status_code == 200  # never limited


@pytest.mark.parametrize("stream", [False, True])
async def test_streaming_sends_tokens_and_action_events(serve_agents, sse, host, stream) -> None:
    host.register(PingPlugin(), name="ping")
    model = FakeModel().queue("Here you go friend", actions=["PING"])
    async with serve_agents(model=model) as served, served.client() as client:
        path = "/Testy/message/stream" if stream else "/Testy/message"
        response = await client.post(path, data={"text": "go", "roomId": "s"})
        assert response.status_code == 200, response.text
        if not stream:
            assert response.json()[0]["action"] == "PING"
            return
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response.text)
        names = [name for name, _ in events]
        assert names[0] == "start"
        assert names[-1] == "done"
        tokens = [data["text"] for name, data in events if name == "token"]
        assert tokens == ["Here", " you", " go", " friend"]
        actions = [(data["type"], data["action"]) for name, data in events if name == "action"]
        assert actions == [("action_started", "PING"), ("action_completed", "PING")]
        assert names.index("action") > names.index("token")
        assert events[-1][1]["responses"][0]["text"] == "Here you go friend"


async def test_streaming_reports_a_model_failure_as_an_error_event(serve_agents, sse) -> None:
    model = FakeModel().queue(error=ModelRejectedError("no"))
    async with serve_agents(model=model) as served, served.client() as client:
        response = await client.post("/Testy/message/stream", json={"text": "hi"})
        events = sse(response.text)
        assert events[-1][0] == "error"
        assert events[-1][1]["status"] == 503


async def test_a_retry_reaches_the_stream_and_the_text_is_sent_once(serve_agents, sse) -> None:
    overloaded = TransientModelError("Overloaded at https://backend.internal/v1", retry_after=0.01)
    model = FakeModel().queue(error=overloaded).queue("Here it is, after a retry.")
    async with serve_agents(model=model) as served, served.client() as client:
        response = await client.post("/Testy/message/stream", data={"text": "go", "roomId": "r"})
    events = sse(response.text)
    kinds = [data.get("type", name) if name == "event" else name for name, data in events]
    assert "model_retry" in kinds
    assert kinds.index("model_retry") < kinds.index("done")
    (retry,) = [data for name, data in events if data.get("type") == "model_retry"]
    assert retry["attempt"] == 1
    assert "backend.internal" not in str(retry)
    text = "".join(data["text"] for name, data in events if name == "token")
    assert text == "Here it is, after a retry."
