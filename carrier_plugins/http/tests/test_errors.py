"""Error answers carry a sentence the user can act on and a request id (also in
``X-Request-ID``); exception types, model and store messages and backend URLs go to
the log under that id, never to the client."""

from __future__ import annotations

import logging

import pytest
from carrier_plugin_http.errors import INTERNAL, NOT_ANSWERED, STORE_DOWN

import carrier
from carrier.errors import ModelRejectedError, StoreError
from carrier.protocols import Action
from carrier.testing import FakeModel

BACKEND = "http://10.0.0.7:8080/v1/chat/completions"
DATABASE = "postgresql://carrier:hunter2@db.internal:5432/carrier"
LEAKS = ("http://10.0.0.7", "db.internal", "hunter2", "Error:", "Traceback", "RuntimeError")


def assert_safe(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, leak


@pytest.mark.parametrize(
    "error",
    [
        ModelRejectedError(f"The backend at {BACKEND} answered 400: content_filter"),
        RuntimeError(f"socket to {BACKEND} closed"),  # a bug: Reply.error names the type
    ],
    ids=["model error", "unexpected"],
)
async def test_a_failing_model_is_a_safe_503(serve_agents, sse, caplog, error) -> None:
    model = FakeModel().queue(error=error, times=2)
    caplog.set_level(logging.WARNING, logger="carrier_plugin_http")
    async with serve_agents(model=model) as served, served.client() as client:
        answer = await client.post("/Testy/message", json={"text": "hi"})
        assert answer.status_code == 503
        body = answer.json()
        assert body["error"] == NOT_ANSWERED
        assert body["requestId"] == answer.headers["x-request-id"]
        assert_safe(answer.text)
        streamed = await client.post("/Testy/message/stream", json={"text": "again"})
        name, data = sse(streamed.text)[-1]
        assert (name, data["status"], data["error"]) == ("error", 503, NOT_ANSWERED)
        assert data["requestId"] == streamed.headers["x-request-id"]
        assert_safe(streamed.text)
    logged = [r.getMessage() for r in caplog.records]
    for rid in (body["requestId"], data["requestId"]):
        (line,) = [m for m in logged if rid in m]  # the operator can find it
        if isinstance(error, ModelRejectedError):
            assert BACKEND in line  # with the model's words


@pytest.mark.parametrize("path", ["/Testy/message", "/Testy/message/stream"])
async def test_a_failing_store_is_a_safe_503(serve_agents, sse, caplog, path) -> None:
    caplog.set_level(logging.WARNING, logger="carrier_plugin_http")
    async with serve_agents() as served, served.client() as client:

        async def broken(memory: object) -> bool:
            raise StoreError(f"Could not store a memory in {DATABASE}: connection refused")

        served.store.create_memory = broken  # type: ignore[method-assign]
        answer = await client.post(path, json={"text": "hi"})
        if path.endswith("stream"):
            status, body = sse(answer.text)[-1][1]["status"], sse(answer.text)[-1][1]
        else:
            status, body = answer.status_code, answer.json()
        assert status == 503
        assert body["error"] == STORE_DOWN
        assert body["requestId"] == answer.headers["x-request-id"]
        assert_safe(answer.text)
    assert any(
        DATABASE in r.getMessage() and body["requestId"] in r.getMessage() for r in caplog.records
    )


async def test_an_unexpected_failure_is_a_safe_500_with_the_request_id(
    serve_agents, caplog
) -> None:
    async with serve_agents() as served, served.client() as client:

        async def broken(room_id: str) -> None:
            raise RuntimeError(f"lost {DATABASE}")

        served.store.get_room = broken  # type: ignore[method-assign]
        answer = await client.post("/Testy/message", json={"text": "hi", "roomId": "r"})
        assert answer.status_code == 500
        assert answer.json() == {"error": INTERNAL, "requestId": answer.headers["x-request-id"]}
        assert_safe(answer.text)
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert_safe(ready.text)
    failed = [r for r in caplog.records if answer.json()["requestId"] in r.getMessage()]
    assert failed
    assert failed[0].exc_info is not None  # the traceback is in the log


class Explode(Action):
    name = "EXPLODE"
    description = "Fails."

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"cannot reach {BACKEND}")


class ExplodePlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
        actions.add("EXPLODE", Explode)


async def test_streamed_events_carry_no_error_details(serve_agents, sse, host) -> None:
    host.register(ExplodePlugin(), name="explode")
    model = FakeModel(default_text="sorry").queue("trying", actions=["EXPLODE"])
    async with serve_agents(model=model) as served, served.client() as client:
        answer = await client.post("/Testy/message/stream", json={"text": "go"})
        events = sse(answer.text)
        failed = [data for name, data in events if name == "action"]
        assert failed[-1] == {"type": "action_failed", "action": "EXPLODE", "refused": False}
        assert_safe(answer.text)


async def test_every_answer_has_its_own_request_id(serve_agents, http_settings) -> None:
    limited = http_settings.model_copy(update={"max_body_bytes": 10})
    async with serve_agents(settings=limited) as served, served.client() as client:
        answers = [
            await client.get("/health"),
            await client.get("/nowhere"),
            await client.post("/Testy/message", json={"text": "far too long"}),  # middleware
            await client.get("/agents", headers={"Host": "evil.example"}),  # middleware
            await client.get("/agents/Testy/rooms/r/memories", params={"limit": 0}),
        ]
        assert [a.status_code for a in answers] == [200, 404, 413, 400, 400]
        ids = [a.headers["x-request-id"] for a in answers]
        assert len(set(ids)) == len(ids)
        for answer in answers[1:]:
            assert answer.json()["requestId"] == answer.headers["x-request-id"]
