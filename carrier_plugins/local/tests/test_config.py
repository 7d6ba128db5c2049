"""A missing or unreadable model file is a precise ``ConfigurationError``, when first used."""

from __future__ import annotations

from pathlib import Path

import carrier_plugin_local.plugin
import pytest

import carrier
from carrier.types import ChatMessage, ModelRequest

from .conftest import NOVA

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


def test_an_unknown_flash_attention_value_names_the_setting_and_its_values(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_FLASH_ATTENTION", "sometimes")
    host.register(carrier_plugin_local.plugin, name="local")
    with pytest.raises(carrier.ConfigurationError) as caught:
        host.models.create("local")
    assert "CARRIER_LOCAL_FLASH_ATTENTION: Input should be 'off', 'on' or 'auto'" in str(
        caught.value
    )


@pytest.mark.parametrize("flash_attention", ["on", "auto"])
async def test_flash_attention_turned_on_still_answers_in_persona(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch, flash_attention: str
) -> None:
    """Off is the default (faster on a CPU); the other values reach llama.cpp and work."""
    monkeypatch.setenv("CARRIER_LOCAL_FLASH_ATTENTION", flash_attention)
    monkeypatch.setenv("CARRIER_LOCAL_CONTEXT_SIZE", "1024")
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")
    request = ModelRequest(
        system=NOVA,
        messages=[ChatMessage(role="user", content="What is your name?")],
        max_tokens=24,
        seed=1,
    )
    try:
        response = await model.generate(request)
    finally:
        await model.aclose()
    assert "nova" in response.text.lower()
