"""The official SDK's client against ``carrier mcp serve``, over stdio and Streamable HTTP
(real subprocesses; the ``recall`` test model shows the persona and the history it got)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from .conftest import free_port, wait_for_port


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    character = tmp_path / "ada.json"
    character.write_text(json.dumps({"name": "Ada", "system": "You are Ada, a tidy archivist."}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        CARRIER_MODEL_LARGE="recall",
        CARRIER_MODEL_SMALL="recall",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path}/agent.db",
        CARRIER_CHARACTER=str(character),
        CARRIER_DISABLE_PLUGINS="discord,telegram,workers,otel",
        **extra,
    )
    return env


def text_of(result: Any) -> str:
    assert not result.is_error, result.content
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


async def test_stdio_send_message_answers_in_persona_and_remembers(tmp_path: Path) -> None:
    env = agent_env(tmp_path, CARRIER_MCP_USER="alice", CARRIER_MCP_ROLE="member")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carrier_plugin_mcp.testing", "agent", "serve"],
        env=env,
    )
    async with Client(params) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["send_message"]
        first = text_of(await client.call_tool("send_message", {"text": "my cat is Tom"}))
        second = text_of(await client.call_tool("send_message", {"text": "what is my cat?"}))
        rooms = json.loads(
            (await client.read_resource("carrier://rooms")).contents[0].text  # type: ignore[union-attr]
        )["rooms"]
        (room,) = rooms
        recent = json.loads(
            (await client.read_resource(f"carrier://rooms/{room}")).contents[0].text  # type: ignore[union-attr]
        )
        prompt = await client.get_prompt("character")
    assert first.startswith("You are Ada, a tidy archivist.")
    assert "Heard: my cat is Tom. Earlier: nothing." in first
    assert "Heard: what is my cat?. Earlier: my cat is Tom." in second
    assert [m["text"] for m in recent["messages"]] == [
        "my cat is Tom",
        first,
        "what is my cat?",
        second,
    ]
    assert "You are Ada, a tidy archivist." in prompt.messages[0].content.text  # type: ignore[union-attr]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``carrier mcp serve --http`` for two users' tokens; its URL."""
    import subprocess

    port = free_port()
    tokens = {
        "alice-token": {"user": "alice", "role": "member"},
        "bob-token": "bob",
    }
    env = agent_env(tmp_path, CARRIER_MCP_USER_TOKENS=json.dumps(tokens))
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carrier_plugin_mcp.testing",
            "agent",
            "serve",
            "--http",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        # pytest shows what a fixture printed only when its test failed: the server's
        # side of a failure (its traceback) comes with the report
        sys.stderr.write((tmp_path / "server.log").read_text(errors="replace"))


@asynccontextmanager
async def client_for(url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_http_answers_each_token_as_its_own_user(served: str) -> None:
    async with client_for(served, "alice-token") as alice:
        first = text_of(await alice.call_tool("send_message", {"text": "I am Alice"}))
        second = text_of(await alice.call_tool("send_message", {"text": "who am I?"}))
        (alice_room,) = json.loads(
            (await alice.read_resource("carrier://rooms")).contents[0].text  # type: ignore[union-attr]
        )["rooms"]
    assert "Heard: I am Alice. Earlier: nothing." in first
    assert "Earlier: I am Alice." in second
    async with client_for(served, "bob-token") as bob:
        answer = text_of(await bob.call_tool("send_message", {"text": "hello"}))
        assert "Earlier: nothing." in answer  # Bob's own room: none of Alice's history
        rooms = json.loads(
            (await bob.read_resource("carrier://rooms")).contents[0].text  # type: ignore[union-attr]
        )["rooms"]
        assert alice_room not in rooms
        with pytest.raises(Exception, match="no part"):
            await bob.read_resource(f"carrier://rooms/{alice_room}")
        refused = await bob.call_tool("send_message", {"text": "hi", "room": alice_room})
        assert refused.is_error
        unstorable = await bob.call_tool("send_message", {"text": "a\x00b"})
        assert unstorable.is_error
        (block,) = unstorable.content
        assert isinstance(block, TextContent)
        assert "text holds a NUL character (\\x00) at position 1" in block.text
        assert "Earlier: hello." in text_of(await bob.call_tool("send_message", {"text": "hi"}))


async def test_http_refuses_a_request_without_a_valid_token(served: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            served,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
