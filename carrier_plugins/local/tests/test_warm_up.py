"""The warm-up with the real model: a started runtime loads the weights in the
background and prefills the persona, so the first message reads it from llama.cpp's
cache; a broken model file never stops the runtime from starting."""

from __future__ import annotations

import logging
from pathlib import Path

import carrier_plugin_local.plugin
import pytest
from carrier_plugin_local.model import LocalModel

from carrier import AgentRuntime, Character, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.prompts import character_system_prompt
from carrier.testing import EventRecorder
from carrier.types import EventType, ModelClass

NOVA = Character(
    name="Nova",
    system="You are Nova, a friendly and curious AI companion on the user's own computer.",
    bio=["Nova is a small assistant built with Carrier.", "Nova keeps answers short."],
    adjectives=["friendly", "curious", "concise"],
)


def started(host: PluginHost) -> AgentRuntime:
    host.register(carrier_plugin_local.plugin, name="local")
    return AgentRuntime(
        NOVA, host=host, store=InMemoryStore(), models={"large": "local", "embedding": None}
    )


def said(user: str) -> IncomingMessage:
    return IncomingMessage(text="What is your name?", user_id=user, room_id=f"dm-{user}")


def large_used(events: EventRecorder) -> list[dict[str, object]]:
    return [e.data for e in events.of(EventType.MODEL_USED) if e.data["model_class"] == "large"]


async def test_the_first_message_reads_the_warmed_persona_from_the_cache(
    host: PluginHost, events: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_MAX_TOKENS", "8")
    async with started(host) as runtime:
        await runtime.warmed()
        model = runtime.model(ModelClass.LARGE).primary
        assert isinstance(model, LocalModel)
        assert model.chat.loaded
        reply = await runtime.handle(said("ada"))
        assert reply.error is None
    (warmed,) = events.of(EventType.MODEL_WARMED)
    assert warmed.data == {
        "model": "local:SmolLM2-135M-Instruct",
        "model_class": "large",
        "ok": True,
        "error": None,
    }
    (used,) = large_used(events)
    # the whole persona came from the cache, and nothing after it (no user's words)
    persona = model.count_tokens(character_system_prompt(NOVA))
    cached = used["cache_read_input_tokens"]
    assert isinstance(cached, int)
    assert persona <= cached < persona + 8, (persona, used)


async def test_a_message_sent_while_warming_waits_for_it(
    host: PluginHost, events: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_MAX_TOKENS", "8")
    async with started(host) as runtime:
        model = runtime.model(ModelClass.LARGE).primary
        assert isinstance(model, LocalModel)
        assert not model.chat.loaded
        reply = await runtime.handle(said("ada"))  # at once: it waits for the warm-up
        assert reply.error is None
    (used,) = large_used(events)
    assert isinstance(used["cache_read_input_tokens"], int)
    assert used["cache_read_input_tokens"] > 20, used


async def test_a_broken_model_file_is_logged_and_reported_at_the_first_message(
    host: PluginHost,
    events: EventRecorder,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    monkeypatch.setenv("CARRIER_LOCAL_MODEL_PATH", str(bogus))
    with caplog.at_level(logging.WARNING, logger="carrier.runtime"):
        async with started(host) as runtime:  # starts all the same
            await runtime.warmed()
            reply = await runtime.handle(said("ada"))
    assert "Warming up the large model local:model failed" in caplog.text
    (warmed,) = events.of(EventType.MODEL_WARMED)
    assert not warmed.data["ok"]
    assert "cannot be read as a GGUF model" in str(warmed.data["error"])
    assert reply.error is not None
    assert "cannot be read as a GGUF model" in reply.error


async def test_warm_up_can_be_turned_off(
    host: PluginHost, events: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_WARM_UP", "false")
    async with started(host) as runtime:
        await runtime.warmed()
        model = runtime.model(ModelClass.LARGE).primary
        assert isinstance(model, LocalModel)
        assert not model.chat.loaded
    (warmed,) = events.of(EventType.MODEL_WARMED)
    assert warmed.data["ok"]


async def test_the_embedding_model_is_reported_by_its_own_name(
    host: PluginHost, events: EventRecorder
) -> None:
    host.register(carrier_plugin_local.plugin, name="local")
    models = {"large": "local", "embedding": "local"}
    async with AgentRuntime(NOVA, host=host, store=InMemoryStore(), models=models) as runtime:
        await runtime.warmed()
    warmed = {e.data["model_class"]: e.data["model"] for e in events.of(EventType.MODEL_WARMED)}
    # the same backend, two models: SmolLM2 answers, MiniLM embeds
    assert warmed == {"embedding": "local:all-MiniLM-L6-v2", "large": "local:SmolLM2-135M-Instruct"}
