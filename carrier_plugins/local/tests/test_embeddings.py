"""MiniLM embeddings on onnxruntime: normalized, 384 dimensions, meaningful, batched."""

from __future__ import annotations

import math

from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings

PAIRS = [
    ("A cat sits on the mat.", "A kitten rests on the rug.", "The stock market fell sharply."),
    ("How do I reset my password?", "I forgot my password, how to change it?", "Bananas!"),
    ("The weather is sunny today.", "It is a bright and sunny day.", "He plays the violin."),
    ("She bought a new car.", "She purchased a new automobile.", "The soup needs more salt."),
    ("The meeting was postponed.", "The meeting has been delayed.", "Penguins live in Antarctica."),
    ("I love reading books.", "Reading novels is my favorite hobby.", "The server crashed."),
    ("The train leaves at 8 am.", "The train departs at eight in the morning.", "Dogs bark."),
    ("He is a talented chef.", "He cooks really well.", "The river flooded the town."),
    ("Turn off the lights.", "Switch the lights off.", "Quantum physics is hard."),
    ("The movie was boring.", "That film was dull.", "Add two eggs to the flour."),
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_paraphrases_score_higher_than_unrelated(model: LocalModel) -> None:
    texts = [t for triple in PAIRS for t in triple]
    vectors = await model.embed(texts)
    for i in range(len(PAIRS)):
        anchor, paraphrase, unrelated = vectors[3 * i : 3 * i + 3]
        assert cosine(anchor, paraphrase) > cosine(anchor, unrelated) + 0.2, PAIRS[i]


async def test_vectors_are_normalized_and_ordered(model: LocalModel) -> None:
    texts = ["short", "a much longer sentence about something else entirely", ""]
    vectors = await model.embed(texts)
    assert len(vectors) == 3
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4) for v in vectors)
    (alone,) = await model.embed([texts[1]])
    assert cosine(alone, vectors[1]) > 0.999
    assert await model.embed([]) == []


async def test_a_batch_of_a_thousand(model: LocalModel) -> None:
    texts = [f"Sentence number {i} talks about topic {i % 17}." for i in range(1000)]
    texts[500] = "A far longer sentence, about lighthouses and storms, that sorts last."
    vectors = await model.embed(texts)
    assert len(vectors) == 1000
    assert all(len(v) == 384 for v in vectors)
    # Batches run in parallel in length order; each vector still lands at its text.
    for i in (0, 7, 500, 999):
        (alone,) = await model.embed([texts[i]])
        assert cosine(alone, vectors[i]) > 0.999, i


async def test_embedding_does_not_load_the_chat_model() -> None:
    model = build_model(LocalSettings(_env_file=None))
    assert isinstance(model, LocalModel)
    await model.embed(["hello"])
    assert model.embedder.loaded
    assert not model.chat.loaded
    await model.aclose()
