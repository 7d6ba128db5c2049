"""carrier.testing: the remote-request guard and the test doubles."""

from __future__ import annotations

import socket

import pytest

from carrier.errors import TransientModelError
from carrier.testing import FakeModel, FunctionModel, RemoteRequestBlocked
from carrier.types import ChatMessage, ModelRequest, ModelResponse

REQUEST = ModelRequest(messages=[ChatMessage(role="user", content="hello world")])


def test_guard_blocks_a_connection_to_a_remote_address() -> None:
    # 192.0.2.1 is TEST-NET-1 (documentation only); the guard refuses before any syscall.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(RemoteRequestBlocked, match="tests must not call remote models"),
    ):
        sock.connect(("192.0.2.1", 443))


def test_guard_allows_loopback() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


async def test_fake_model_scripts_replies_errors_and_records_requests() -> None:
    model = FakeModel(default_text="default")
    model.queue("first", actions=["PING", ("MOVE", {"to": "x"})]).queue(
        error=TransientModelError("busy")
    )
    first = await model.generate(REQUEST)
    assert first.text == "first"
    assert [(c.name, c.arguments) for c in first.action_calls] == [
        ("PING", {}),
        ("MOVE", {"to": "x"}),
    ]
    with pytest.raises(TransientModelError):
        await model.generate(REQUEST)
    assert (await model.generate(REQUEST)).text == "default"
    assert len(model.requests) == 3


async def test_fake_model_streams_word_by_word_and_embeds_only_when_asked() -> None:
    model = FakeModel().queue("a b c")
    chunks = [c async for c in model.stream(REQUEST)]
    assert [c.text for c in chunks[:-1]] == ["a", " b", " c"]
    assert chunks[-1].response is not None
    with pytest.raises(NotImplementedError, match="FakeModel does not produce embeddings"):
        await model.embed(["x"])
    vectors = await FakeModel(embedding_dimension=16).embed(["red bike", "red bike", "sky"])
    assert vectors[0] == vectors[1]
    assert len(vectors[2]) == 16


async def test_function_model_computes_answers() -> None:
    async def shout(request: ModelRequest) -> ModelResponse:
        return ModelResponse(text=request.messages[-1].content.upper())

    assert (await FunctionModel(shout).generate(REQUEST)).text == "HELLO WORLD"
    assert (await FunctionModel(lambda r: "plain").generate(REQUEST)).text == "plain"
