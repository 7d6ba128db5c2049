"""A missing or unreadable model file is a precise ``ConfigurationError``, when first used."""

from __future__ import annotations

from pathlib import Path

import carrier_plugin_local.plugin
import pytest

import carrier
from carrier.types import ChatMessage, ModelRequest

REQUEST = ModelRequest(messages=[ChatMessage(role="user", content="Hi")], max_tokens=4)


async def test_missing_model_file(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    monkeypatch.setenv("CARRIER_LOCAL_MODEL_PATH", str(missing))
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")  # nothing is checked before first use
    with pytest.raises(carrier.ConfigurationError) as caught:
        await model.generate(REQUEST)
    message = str(caught.value)
    assert repr(str(missing)) in message
    assert "does not exist" in message
    assert "CARRIER_LOCAL_MODEL_PATH" in message
    # counting tokens never raises (providers call it); it estimates until the file is fixed
    assert model.count_tokens("hello there") == len("hello there") // 3 + 1


async def test_unreadable_model_file(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    monkeypatch.setenv("CARRIER_LOCAL_MODEL_PATH", str(bogus))
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")
    with pytest.raises(carrier.ConfigurationError, match="cannot be read as a GGUF model"):
        await model.generate(REQUEST)


async def test_embedding_needs_no_chat_model(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")
    (vector,) = await model.embed(["embeddings work without the chat weights"])
    assert len(vector) == 384
    assert not model.chat.loaded  # type: ignore[attr-defined]
    await model.aclose()
