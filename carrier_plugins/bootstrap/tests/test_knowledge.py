"""Knowledge: chunking, ingestion at start-up (idempotent by content hash), retrieval
among hundreds of chunks, and ``carrier knowledge add``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from carrier_plugin_bootstrap.knowledge import chunk_text, ingest_path, search_knowledge

from carrier.character import Character, KnowledgeItem
from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.testing import FakeModel, prompt_text
from carrier.types import IncomingMessage, MemoryType

Say = Callable[..., IncomingMessage]
CARRIER = str(Path(sys.executable).with_name("carrier"))


class CountingEmbedder(FakeModel):
    """Hashed-word embeddings that count how many texts were embedded."""

    def __init__(self) -> None:
        super().__init__(name="embedder", embedding_dimension=512)
        self.embedded = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return await super().embed(texts)


def test_chunks_keep_paragraphs_and_overlap() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 60 for i in range(10))
    chunks = chunk_text(text, size=400, overlap=80)
    assert all(len(c) <= 400 for c in chunks)
    assert len(chunks) >= 10
    assert "Paragraph 3." in "".join(chunks)
    long = "x" * 50 + " " + "sentence. " * 200
    assert all(len(c) <= 300 for c in chunk_text(long, size=300, overlap=0))
    assert chunk_text("") == []


async def _fragments(agent: AgentRuntime) -> int:
    return await agent.store.count_memories(agent_id=agent.agent_id, type=MemoryType.FRAGMENT)


async def test_character_knowledge_is_ingested_once(
    bootstrap_host: PluginHost, sql_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha\n\nThe alpha valve opens at dawn.")
    (docs / "sub" / "b.txt").write_text("The beta pump runs on Tuesdays.")
    (docs / "ignored.pdf").write_text("not text")
    (tmp_path / "single.md").write_text("The gamma gate is blue.")
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory
    character = Character(
        name="Testy",
        knowledge=[
            KnowledgeItem(text="The delta door squeaks."),
            KnowledgeItem(path="single.md"),
            KnowledgeItem.model_validate({"directory": {"path": "docs", "shared": True}}),
            KnowledgeItem(path="missing.md"),  # logged, not fatal
        ],
    )
    embedder = CountingEmbedder()
    models: dict[str, Any] = {"large": FakeModel(), "small": FakeModel(), "embedding": embedder}
    async with AgentRuntime(character, host=bootstrap_host, store=sql_store, models=models) as a:
        assert await _fragments(a) == 4
        documents = await a.store.get_memories(agent_id=a.agent_id, type=MemoryType.DOCUMENT)
        assert len(documents) == 4
        assert {d.metadata["shared"] for d in documents} == {False, True}
        first = embedder.embedded
    async with AgentRuntime(character, host=bootstrap_host, store=sql_store, models=models) as a:
        assert embedder.embedded == first  # nothing unchanged is embedded again
        assert await _fragments(a) == 4
    (tmp_path / "single.md").write_text("The gamma gate is green now.")
    async with AgentRuntime(character, host=bootstrap_host, store=sql_store, models=models) as a:
        assert embedder.embedded == first + 1  # only the changed file
        assert await _fragments(a) == 4  # its old fragment replaced
        hits = await search_knowledge(a, "what colour is the gamma gate")
        assert hits[0].memory.content.text == "The gamma gate is green now."


async def test_the_right_chunk_among_hundreds_reaches_the_prompt(
    bootstrap_host: PluginHost,
    character: Character,
    sql_store: Any,
    tmp_path: Path,
    say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARRIER_BOOTSTRAP_CHUNK_CHARS", "200")
    names = [f"{a}{b}" for a in ("kal", "mor", "ven", "sil", "tor") for b in range(50)]
    keepers = [
        f"{a}{b}"
        for a in ("anna", "bert", "cleo", "dora", "emil")
        for b in ("son", "berg", "dottir", "ez", "ski", "ova", "man", "sen", "ton", "ley")
    ] * 5
    paragraphs = [
        f"Station {n} ({n} north, {n} south) is kept by {keepers[i]}, who feeds {i % 7} goats."
        for i, n in enumerate(names)
    ]
    manual = tmp_path / "manual.md"
    manual.write_text("\n\n".join(paragraphs))
    large = FakeModel()
    async with AgentRuntime(
        character,
        host=bootstrap_host,
        store=sql_store,
        models={
            "large": large,
            "small": FakeModel(default_text="{}"),
            "embedding": FakeModel(embedding_dimension=4096),
        },
    ) as agent:
        report = await ingest_path(agent, manual)
        assert report.fragments >= 200
        assert await _fragments(agent) == report.fragments
        again = await ingest_path(agent, manual)
        assert again.added == []
        assert again.unchanged == [str(manual.resolve())]
        await agent.handle(say("who keeps station ven17, north and south, and how many goats?"))
    system = prompt_text(large.requests[-1])
    best = system.split("Knowledge:\n- ", 1)[1].split("\n- ", 1)[0]
    assert "is kept by bertsen, who feeds 5 goats." in best


def test_the_knowledge_command_adds_files_idempotently(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("The epsilon engine needs oil every week.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        CARRIER_PLUGINS="bootstrap,sql",
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path}/k.db",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_EMBEDDING="echo",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CARRIER, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
        )

    first = run("knowledge", "add", str(note))
    assert first.returncode == 0, first.stderr
    assert f"added {note.resolve()}" in first.stdout
    assert "Nova: 1 documents added (1 fragments), 0 unchanged" in first.stdout
    second = run("knowledge", "add", str(note))
    assert f"unchanged {note.resolve()}" in second.stdout
    missing = run("knowledge", "add", str(tmp_path / "nope.md"))
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert "knowledge" in run("--help").stdout
