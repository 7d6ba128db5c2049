"""Knowledge (RAG): documents chunked, embedded and stored, idempotently.

A source (an inline string, a file, or every ``.md``/``.txt`` file of a directory)
becomes one ``MemoryType.DOCUMENT`` memory plus its chunks as
``MemoryType.FRAGMENT`` memories, which the kernel's ``compose_state`` searches for
every message that has an embedding. Ids derive from the agent and the content
hash, so a restart re-ingests nothing unchanged; a changed file replaces its old
fragments. Fragments are written before their document, so an interrupted
ingestion is simply redone at the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from carrier.types import (
    Content,
    Memory,
    MemoryScope,
    MemoryType,
    ScoredMemory,
    SearchScope,
    new_id,
)
from carrier_plugin_bootstrap.config import NAMESPACE, settings_for

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime

__all__ = [
    "KNOWLEDGE_SUFFIXES",
    "IngestReport",
    "chunk_text",
    "ingest_character_knowledge",
    "ingest_path",
    "ingest_text",
    "knowledge_base_dir",
    "search_knowledge",
]

logger = logging.getLogger("carrier_plugin_bootstrap.knowledge")

#: File suffixes ingested from a knowledge directory.
KNOWLEDGE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
_EMBED_BATCH = 64
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class IngestReport:
    """What an ingestion did."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fragments: int = 0

    def merge(self, other: IngestReport) -> None:
        self.added += other.added
        self.unchanged += other.unchanged
        self.fragments += other.fragments

    def __str__(self) -> str:
        return (
            f"{len(self.added)} documents added ({self.fragments} fragments), "
            f"{len(self.unchanged)} unchanged"
        )


# ---- chunking ----------------------------------------------------------------------------


def _pieces(text: str, size: int) -> list[str]:
    """Paragraphs, then sentences, then words, each at most ``size`` characters."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if len(paragraph) <= size:
            pieces.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    return pieces


def chunk_text(text: str, *, size: int = 1000, overlap: int = 100) -> list[str]:
    """Split ``text`` into chunks of at most about ``size`` characters.

    Paragraphs and sentences are kept whole where they fit; each chunk after the
    first starts with the last ``overlap`` characters (whole words) of the previous
    one, so a fact cut by a boundary is still found.
    """
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, size):
        joined = f"{current}\n{piece}" if current else piece
        if len(joined) <= size or not current:
            current = joined
            continue
        chunks.append(current)
        tail = current[-overlap:] if overlap else ""
        tail = tail[tail.find(" ") + 1 :] if " " in tail else ""
        current = f"{tail} {piece}".strip() if tail and len(tail) + len(piece) < size else piece
    if current:
        chunks.append(current)
    return chunks


# ---- ingestion ---------------------------------------------------------------------------


def _room(runtime: AgentRuntime) -> str:
    return runtime.system_room("knowledge")


async def _embed_all(runtime: AgentRuntime, texts: list[str]) -> list[list[float]] | None:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), _EMBED_BATCH):
        batch = await runtime.embed(texts[start : start + _EMBED_BATCH])
        if batch is None:
            return None
        vectors.extend(batch)
    return vectors


async def ingest_text(
    runtime: AgentRuntime, text: str, *, source: str, shared: bool = False
) -> IngestReport:
    """Chunk, embed and store one document; nothing is redone when it is unchanged.

    Args:
        runtime: A started runtime (its store and embedding model are used).
        text: The document.
        source: Where it came from (a path, or ``"inline"``); one current document
            per source: a changed source replaces its previous fragments.
        shared: Recorded in the metadata (ElizaOS's ``directory.shared``).
    """
    report = IngestReport()
    store = runtime.store
    digest = hashlib.sha256(text.encode()).hexdigest()
    doc_id = new_id(f"knowledge:{runtime.agent_id}:{digest}")
    existing = await store.get_memory(doc_id)
    if existing is not None:
        # stored without embeddings, and an embedding model exists now: redo it
        if existing.metadata.get("embedded") or await runtime.embed(["probe"]) is None:
            report.unchanged.append(source)
            return report
        await _delete_document(runtime, existing)
    sources = runtime.plugin_state(NAMESPACE)
    source_key = f"knowledge:{source}"
    previous = await sources.get(source_key)
    if previous is None:  # written by carrier-plugin-bootstrap before plugin_state
        previous = await store.get_cache(f"bootstrap:knowledge:{runtime.agent_id}:{source}")
    if previous and previous != doc_id:
        old = await store.get_memory(str(previous))
        if old is not None:
            await _delete_document(runtime, old)
    settings = settings_for(runtime)
    chunks = chunk_text(text, size=settings.chunk_chars, overlap=settings.chunk_overlap)
    vectors = await _embed_all(runtime, chunks) if chunks else []
    for index, chunk in enumerate(chunks):
        await store.create_memory(
            Memory(
                id=new_id(f"{doc_id}:{index}"),
                agent_id=runtime.agent_id,
                entity_id=runtime.agent_id,
                room_id=_room(runtime),
                type=MemoryType.FRAGMENT,
                scope=MemoryScope.AGENT,
                content=Content(text=chunk, source="knowledge"),
                embedding=vectors[index] if vectors else None,
                metadata={"document_id": doc_id, "index": index, "source": source},
            )
        )
    await store.create_memory(
        Memory(
            id=doc_id,
            agent_id=runtime.agent_id,
            entity_id=runtime.agent_id,
            room_id=_room(runtime),
            type=MemoryType.DOCUMENT,
            scope=MemoryScope.AGENT,
            content=Content(text=text, source="knowledge"),
            metadata={
                "source": source,
                "sha256": digest,
                "fragments": len(chunks),
                "embedded": vectors is not None and bool(chunks),
                "shared": shared,
            },
        )
    )
    await sources.set(source_key, doc_id)
    report.added.append(source)
    report.fragments += len(chunks)
    return report


async def _delete_document(runtime: AgentRuntime, document: Memory) -> None:
    count = int(document.metadata.get("fragments", 0))
    for index in range(count):
        await runtime.store.delete_memory(new_id(f"{document.id}:{index}"))
    await runtime.store.delete_memory(document.id)


def _read_sources(path: Path) -> list[tuple[str, str]]:
    """``(resolved path, text)`` of a file or of each knowledge file under a folder."""
    if not path.exists():
        raise FileNotFoundError(f"Knowledge path {str(path)!r} does not exist.")
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KNOWLEDGE_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    found = []
    for file in files:
        try:
            found.append((str(file.resolve()), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("Knowledge file %s skipped: %s", file, exc)
    return found


async def ingest_path(runtime: AgentRuntime, path: Path, *, shared: bool = False) -> IngestReport:
    """Ingest a file, or every ``.md``/``.txt`` file under a directory (sorted).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    report = IngestReport()
    for source, text in await asyncio.to_thread(_read_sources, path):
        report.merge(await ingest_text(runtime, text, source=source, shared=shared))
    return report


def _resolve(raw: str, base: Path) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def knowledge_base_dir(runtime: AgentRuntime) -> Path:
    """The folder relative knowledge paths are resolved against: the character
    file's folder when known, else the working directory."""
    known = getattr(runtime.character, "source_path", None) or runtime.settings.character
    if known:
        return Path(os.fspath(known)).expanduser().resolve().parent
    return Path.cwd()


async def ingest_character_knowledge(runtime: AgentRuntime) -> IngestReport:
    """Ingest every item of ``runtime.character.knowledge``; a missing file is logged."""
    report = IngestReport()
    base = knowledge_base_dir(runtime)
    for index, item in enumerate(runtime.character.knowledge):
        if item.text is not None:
            source = f"inline:{index}"
            report.merge(await ingest_text(runtime, item.text, source=source, shared=item.shared))
            continue
        raw = item.path if item.path is not None else item.directory
        assert raw is not None
        try:
            report.merge(await ingest_path(runtime, _resolve(raw, base), shared=item.shared))
        except FileNotFoundError as exc:
            logger.warning("%s (character %r)", exc, runtime.character.name)
    return report


async def search_knowledge(
    runtime: AgentRuntime, query: str, *, limit: int = 5, threshold: float | None = None
) -> list[ScoredMemory]:
    """The fragments nearest to ``query``; empty without an embedding model."""
    vectors = await runtime.embed([query]) if query.strip() else None
    if not vectors:
        return []
    return await runtime.store.search_memories(
        agent_id=runtime.agent_id,
        embedding=vectors[0],
        type=MemoryType.FRAGMENT,
        limit=limit,
        threshold=runtime.settings.search_threshold if threshold is None else threshold,
        scope=SearchScope(room_id=_room(runtime)),  # the agent's own knowledge only
    )
