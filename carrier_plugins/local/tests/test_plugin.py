"""The plugin registered in-process: settings namespace, model factory, overrides."""

from __future__ import annotations

from pathlib import Path

import carrier_plugin_local.plugin
import pytest
from carrier_plugin_local.model import LocalModel

import carrier
from carrier.types import ChatMessage, ModelRequest


async def test_creates_a_working_model_through_the_host(host: carrier.PluginHost) -> None:
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")
    assert isinstance(model, LocalModel)
    assert model.embedding_dimension == 384
    assert model.context_window == 4096
    request = ModelRequest(messages=[ChatMessage(role="user", content="Hi!")], max_tokens=8, seed=1)
    response = await model.generate(request)
    assert response.text
    assert response.model == "local:SmolLM2-135M-Instruct"
    await model.aclose()


def test_settings_come_from_the_environment(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_TEMPERATURE", "0.2")
    monkeypatch.setenv("CARRIER_LOCAL_CONTEXT_SIZE", "1024")
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local")
    assert isinstance(model, LocalModel)
    assert model.settings.temperature == 0.2
    assert model.context_window == 1024


def test_model_id_names_a_gguf_file(host: carrier.PluginHost, tmp_path: Path) -> None:
    host.register(carrier_plugin_local.plugin, name="local")
    model = host.models.create("local", model=str(tmp_path / "other.gguf"))
    assert isinstance(model, LocalModel)
    assert model.chat.path == tmp_path / "other.gguf"
    assert model.name == "local:other"
    default = host.models.create("local", model="smollm2")
    assert isinstance(default, LocalModel)
    assert default.chat.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_invalid_setting_is_a_configuration_error(
    host: carrier.PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_LOCAL_CONTEXT_SIZE", "12")
    host.register(carrier_plugin_local.plugin, name="local")
    with pytest.raises(carrier.ConfigurationError, match="CARRIER_LOCAL_CONTEXT_SIZE"):
        host.models.create("local")
