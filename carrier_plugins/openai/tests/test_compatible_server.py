"""``CARRIER_OPENAI_BASE_URL=… CARRIER_OPENAI_MODEL=qwen2.5 carrier chat`` (Ollama, LM
Studio, llama-server): the real command, no key and no other setting, against a local
server answering Chat Completions bodies. Two users, each in their own room."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from openai_fakes import completion

from carrier.testing.http_fake import FakeServer, Recorded, Reply

CARRIER = str(Path(sys.executable).with_name("carrier"))


async def _chat(url: str, data_home: Path, user: str, text: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CARRIER_", "OPENAI_"))}
    environment.update(
        XDG_DATA_HOME=str(data_home),
        CARRIER_OPENAI_BASE_URL=url,
        CARRIER_OPENAI_MODEL="qwen2.5",
    )
    process = await asyncio.create_subprocess_exec(
        CARRIER,
        "chat",
        "--user",
        user,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(process.communicate(text.encode()), 240)
    return process.returncode or 0, out.decode(), err.decode()


async def test_chat_with_a_compatible_server_needs_no_key(tmp_path: Path) -> None:
    def answer(request: Recorded) -> Reply:
        said = request.json["messages"][-1]["content"]
        return Reply(json=completion(f"Hello from qwen ({len(said)})", model="qwen2.5"))

    async with FakeServer(answer) as server:
        url = server.url + "/v1"
        ada = await _chat(url, tmp_path, "ada", "Hi, I am Ada.\n")
        bob = await _chat(url, tmp_path, "bob", "Hi, I am Bob.\n")
    assert ada[0] == 0, ada[2]
    assert bob[0] == 0, bob[2]
    assert "Hello from qwen" in ada[1]
    assert "Hello from qwen" in bob[1]
    chats = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert chats
    assert {body["model"] for body in chats} == {"qwen2.5"}  # the small model too
    last = [body["messages"][-1]["content"] for body in chats]
    assert any(text.endswith("Hi, I am Ada.") for text in last)
    assert any(text.endswith("Hi, I am Bob.") for text in last)
