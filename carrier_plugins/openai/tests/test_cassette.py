"""``carrier.testing``'s cassettes around this plugin's model: recorded once through the
real ``openai`` SDK against a scripted server on 127.0.0.1, replayed with it stopped."""

from __future__ import annotations

from pathlib import Path

import carrier_plugin_openai.plugin
import pytest
from openai_fakes import FakeServer, Recorded, Reply, chunk, completion

from carrier import PluginHost
from carrier.protocols import Model
from carrier.testing import Cassette, CassetteMismatchError
from carrier.types import ChatMessage, ModelRequest

KEY = "sk-cassette-test-key-0123456789"


def weather(city: str) -> ModelRequest:
    return ModelRequest(
        system="You are a helpful assistant.",
        messages=[ChatMessage(role="user", content=f"Weather in {city}?")],
        max_tokens=20,
        temperature=0.0,
    )


def answer(request: Recorded) -> Reply:
    if request.json.get("stream"):
        return Reply(
            sse=[
                (None, chunk({"role": "assistant", "content": "Sunny"})),
                (None, chunk({"content": " and"})),
                (None, chunk({"content": " warm."})),
                (None, chunk({}, finish_reason="stop")),
                (
                    None,
                    chunk(usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
                ),
                (None, "[DONE]"),
            ]
        )
    return Reply(json=completion("It is sunny in Oslo."))


@pytest.fixture
def openai_host(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CARRIER_OPENAI_API_KEY", KEY)
    host.register(carrier_plugin_openai.plugin, name="openai")
    return host


async def test_a_cassette_recorded_against_the_server_replays_with_it_stopped(
    openai_host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "openai.yaml"
    async with FakeServer(answer) as server:
        recording = Cassette(path, mode="record")
        model = recording.wrap(
            lambda: openai_host.models.create("openai", base_url=f"{server.url}/v1"),
            label="large",
        )
        try:
            recorded = await model.generate(weather("Oslo"))
            streamed = [piece async for piece in model.stream(weather("Oslo"))]
        finally:
            await model.aclose()
        recording.save()
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert [p.text for p in streamed if p.text] == ["Sunny", " and", " warm."]

    text = path.read_text()
    assert KEY not in text  # the key went to the server, never to the file
    assert "Weather in Oslo?" in text

    # Replay: the server is stopped and no key is set; the factory is never called.
    monkeypatch.delenv("CARRIER_OPENAI_API_KEY")
    built: list[Model] = []

    def factory() -> Model:  # must not run while replaying
        built.append(openai_host.models.create("openai"))
        return built[-1]

    replaying = Cassette(path)
    replay = replaying.wrap(factory, label="large")
    assert replay.name == model.name
    assert await replay.generate(weather("Oslo")) == recorded
    assert [piece async for piece in replay.stream(weather("Oslo"))] == streamed
    replaying.check()
    assert built == []

    changed = Cassette(path)
    with pytest.raises(CassetteMismatchError) as caught:
        await changed.wrap(factory, label="large").generate(weather("Rome"))
    assert caught.value.path == "messages[0].content"
    assert "recorded: 'Weather in Oslo?'" in str(caught.value)
    assert "received: 'Weather in Rome?'" in str(caught.value)
