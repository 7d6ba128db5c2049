"""The README's first command, as a user runs it: ``carrier chat`` with the default
character, the embedded local model and the default SQLite store, no key, no network,
with every workspace plugin installed (as ``python3 dev.py chat`` installs them)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.types import ModelRequest, ModelResponse, Reply, Role

CARRIER = str(Path(sys.executable).with_name("carrier"))


@pytest.fixture
def data_home(tmp_path: Path) -> Path:
    return tmp_path / "data"


def chat(data_home: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    environment.update(
        XDG_DATA_HOME=str(data_home),  # the default store lives in the user's data folder
        CARRIER_LOCAL_SEED="0",  # the shipped 135M model is sampled: fix the seed
        **env,
    )
    return subprocess.run(
        [CARRIER, "chat"], input=text, capture_output=True, text=True, env=environment, timeout=300
    )


def test_default_agent_answers_with_its_name(data_home: Path) -> None:
    first = chat(data_home, "What is your name?\n")
    assert first.returncode == 0, first.stderr
    assert "Nova" in first.stdout
    assert (data_home / "carrier" / "carrier.db").exists()  # created with its folders


def test_a_second_run_remembers_the_first(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    told = chat(data_home, "Hi! My name is Zorblax.\n")
    assert told.returncode == 0, told.stderr

    # The second run, in-process with the same default setup, to see what reaches the
    # model: the first run's exchange, read back from the store. (Whether the shipped
    # 135M model then uses it is the model's quality, not the memory's.)
    for name in [k for k in os.environ if k.startswith("CARRIER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("CARRIER_LOCAL_SEED", "0")

    async def second_run() -> tuple[ModelRequest, Reply]:
        async with AgentRuntime(host=PluginHost()) as runtime:
            chain = runtime.model()
            generate = chain.generate
            seen: list[ModelRequest] = []

            async def recording(request: ModelRequest, **options: Any) -> ModelResponse:
                seen.append(request)
                return await generate(request, **options)

            monkeypatch.setattr(chain, "generate", recording)
            reply = await runtime.handle(
                IncomingMessage(
                    text="What is my name?",
                    user_id="user",
                    user_name="user",
                    source="cli",
                    room_id=f"cli-{runtime.agent_id}-user",
                    role=Role.OWNER,
                )
            )
        return seen[0], reply

    request, reply = asyncio.run(second_run())
    history = [m.content for m in request.messages]
    assert history[0] == "Hi! My name is Zorblax."
    assert history[-1].endswith("What is my name?")  # after the per-message sections
    assert reply.texts, reply.error

    with sqlite3.connect(data_home / "carrier" / "carrier.db") as db:
        texts = [
            row[0]
            for row in db.execute(
                "SELECT json_extract(content, '$.text') FROM memories WHERE type = 'message' "
                "ORDER BY created_at"
            )
        ]
    assert texts[0] == "Hi! My name is Zorblax."
    assert texts[2] == "What is my name?"
    assert len(texts) == 4  # two runs, one room: both questions and both answers


def test_missing_model_file_is_a_precise_error(data_home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    result = chat(data_home, "hello\n", CARRIER_LOCAL_MODEL_PATH=str(missing))
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "CARRIER_LOCAL_MODEL_PATH" in result.stderr
    assert "Traceback" not in result.stderr
