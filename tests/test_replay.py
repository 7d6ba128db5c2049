"""Record/replay of model calls (``carrier.replay``) and the ``cassette`` fixture.

The recorded backends are Carrier's own test doubles; the cassette against the real
OpenAI SDK and a server on 127.0.0.1 is in carrier-plugin-openai's tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carrier import AgentRuntime, IncomingMessage, ModelRejectedError
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.testing import (
    Cassette,
    CassetteError,
    CassetteMismatchError,
    FakeModel,
)
from carrier.types import ChatMessage, ModelRequest

pytest_plugins = ["pytester"]


def ask(*turns: str, **fields: object) -> ModelRequest:
    roles = ["user", "assistant"]
    messages = [ChatMessage(role=roles[i % 2], content=t) for i, t in enumerate(turns)]
    return ModelRequest(system="You are Testy.", messages=messages, **fields)


async def test_generate_stream_and_embed_replay_without_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "calls.yaml"
    backend = FakeModel(name="fake:large", embedding_dimension=8)
    backend.queue("Hello there.").queue("One two three.")
    recording = Cassette(path, mode="record")
    model = recording.wrap(backend, label="large")
    answer = await model.generate(ask("Hi"))
    streamed = [chunk async for chunk in model.stream(ask("Hi", "Hello there.", "Count"))]
    vectors = await model.embed(["one", "two"])
    recording.save()
    assert len(streamed) == 4  # three words, then the final response

    replaying = Cassette(path)
    replay = replaying.wrap(label="large")  # no backend: it is never needed
    assert replay.name == "fake:large"
    assert replay.embedding_dimension == 8
    assert await replay.generate(ask("Hi")) == answer
    chunks = [chunk async for chunk in replay.stream(ask("Hi", "Hello there.", "Count"))]
    assert chunks == streamed  # chunk by chunk, final response included
    assert [c.text for c in chunks[:3]] == ["One", " two", " three."]
    assert await replay.embed(["one", "two"]) == vectors
    replaying.check()  # every recording used, nothing mismatched


async def test_a_changed_prompt_names_the_first_differing_field(tmp_path: Path) -> None:
    path = tmp_path / "calls.yaml"
    recording = Cassette(path, mode="record")
    model = recording.wrap(FakeModel(), label="large")
    await model.generate(ask("Hi", "Hello.", "What is the weather in Oslo?"))
    recording.save()

    replaying = Cassette(path)
    with pytest.raises(CassetteMismatchError) as caught:
        await replaying.wrap(label="large").generate(
            ask("Hi", "Hello.", "What is the weather in Rome?")
        )
    error = caught.value
    assert error.path == "messages[2].content"
    assert (error.recorded, error.received) == (
        "What is the weather in Oslo?",
        "What is the weather in Rome?",
    )
    assert "messages[2].content differs" in str(error)
    assert "recorded: 'What is the weather in Oslo?'" in str(error)
    assert "received: 'What is the weather in Rome?'" in str(error)
    with pytest.raises(CassetteMismatchError):  # kept for the fixture's teardown
        replaying.check()


async def test_random_ids_and_times_do_not_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "calls.yaml"
    recording = Cassette(path, mode="record")

    def volatile(message_id: str, when: str, at: float) -> ModelRequest:
        request = ask(f"Reply to {message_id}.", metadata={"message_id": message_id, "at": at})
        request.system = f"The current date and time is {when} UTC. Now: 2025-03-01T10:00:00Z"
        return request

    await recording.wrap(FakeModel(), label="large").generate(
        volatile("5f0e8a4e-7b1c-4a8e-9d55-0d6a3f9c1e21", "Monday, 03 March 2025, 14:05", 1.74e9)
    )
    recording.save()
    stored = yaml.safe_load(path.read_text())["interactions"][0]["request"]
    assert stored["metadata"] == {"message_id": "<id-1>", "at": "<time>"}
    assert stored["messages"][0]["content"] == "Reply to <id-1>."
    assert stored["system"] == "The current date and time is <time> UTC. Now: <time>"

    replaying = Cassette(path)
    response = await replaying.wrap(label="large").generate(
        volatile("0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d", "Friday, 09 May 2025, 08:30", 1.75e9)
    )
    assert response.text == "ok"
    replaying.check()


async def test_keys_and_secrets_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARRIER_WEATHER_API_KEY", "wx-live-0123456789abcdef")
    path = tmp_path / "calls.yaml"
    recording = Cassette(path, mode="record", secrets=["hunter2-password"])
    backend = FakeModel()
    backend.queue("Your key sk-proj-ABCDEFGHIJKLMNOP1234 is set; so is hunter2-password.")
    backend.queue(error=ModelRejectedError("Bad key wx-live-0123456789abcdef."))
    model = recording.wrap(backend, label="large")
    request = ask(
        "My key is wx-live-0123456789abcdef.",
        metadata={
            "api_key": "anything-at-all",
            "headers": {"Authorization": "Bearer abcdefgh12345678", "x-trace": "kept"},
            "session_token": "opaque",
        },
    )
    await model.generate(request)
    with pytest.raises(ModelRejectedError):
        await model.generate(ask("again"))
    recording.save()
    text = path.read_text()
    for secret in (
        "wx-live-0123456789abcdef",
        "sk-proj-ABCDEFGHIJKLMNOP1234",
        "hunter2-password",
        "anything-at-all",
        "abcdefgh12345678",
        "opaque",
    ):
        assert secret not in text
    assert "kept" in text
    assert "<redacted>" in text

    replaying = Cassette(path)  # the redacted request still matches the live one
    replay = replaying.wrap(label="large")
    assert (await replay.generate(request)).text.startswith("Your key <redacted> is set")
    with pytest.raises(ModelRejectedError, match="Bad key <redacted>"):  # errors replay too
        await replay.generate(ask("again"))
    replaying.check()


async def test_unused_recordings_fail_in_strict_mode(tmp_path: Path) -> None:
    path = tmp_path / "calls.yaml"
    recording = Cassette(path, mode="record")
    model = recording.wrap(FakeModel(), label="small")
    await model.generate(ask("first"))
    await model.generate(ask("second"))
    recording.save()

    strict = Cassette(path, record_hint="run pytest --carrier-record")
    await strict.wrap(label="small").generate(ask("first"))
    with pytest.raises(CassetteError, match="1 of 2 recorded model calls") as caught:
        strict.check()
    assert "#1 small generate: 'second'" in str(caught.value)
    assert "run pytest --carrier-record" in str(caught.value)

    lenient = Cassette(path, strict=False)
    await lenient.wrap(label="small").generate(ask("first"))
    lenient.check()


async def test_a_call_beyond_the_recording_and_a_missing_file_fail_clearly(
    tmp_path: Path,
) -> None:
    with pytest.raises(CassetteError, match=r"No cassette at .*never recorded"):
        Cassette(tmp_path / "absent.yaml")
    path = tmp_path / "calls.yaml"
    Cassette(path, mode="record").save()
    with pytest.raises(CassetteError, match="no 'generate' call of model 'large' left"):
        await Cassette(path).wrap(label="large").generate(ask("Hi"))


async def _conversation(
    models: dict[str, Model | None], turns: tuple[str, ...] = ("hello", "how are you?", "bye")
) -> list[str]:
    """Turns of one user, each reply's texts (or its error); every run makes new
    random message ids."""
    host = PluginHost(autoload=False)
    character = Character(name="Testy", bio=["A careful test agent."])
    texts: list[str] = []
    async with AgentRuntime(character, host=host, store=InMemoryStore(), models=models) as agent:
        for text in turns:
            reply = await agent.handle(IncomingMessage(text=text, user_id="alice"))
            texts += reply.texts if reply.error is None else [f"error: {reply.error}"]
    return texts


async def test_a_runtime_conversation_replays_with_fresh_ids(tmp_path: Path) -> None:
    path = tmp_path / "conversation.yaml"
    backend = FakeModel(name="fake:chat")
    backend.queue("Hi Alice.").queue("Fine, thanks.").queue("Goodbye!")
    recording = Cassette(path, mode="record")
    wrapped = recording.wrap(backend, label="large")
    recorded = await _conversation({"large": wrapped, "small": wrapped, "embedding": None})
    recording.save()
    assert recorded == ["Hi Alice.", "Fine, thanks.", "Goodbye!"]

    replaying = Cassette(path)
    replay = replaying.wrap(label="large")
    assert await _conversation({"large": replay, "small": replay, "embedding": None}) == recorded
    replaying.check()

    # The runtime turns a failed model call into reply.error; the cassette keeps the
    # mismatch, so check() (the fixture's teardown) still fails the test with it.
    changed = Cassette(path, strict=False)
    replay = changed.wrap(label="large")
    texts = await _conversation(
        {"large": replay, "small": replay, "embedding": None}, ("hello", "how are you doing?")
    )
    assert texts[0] == "Hi Alice."
    with pytest.raises(CassetteMismatchError) as caught:
        changed.check()
    assert caught.value.path == "messages[2].content"


# ---- The fixture, the marker and --carrier-record, as a plugin author uses them ----

PROJECT_TEST = """
import pytest

from carrier.testing import FunctionModel
from carrier.types import ChatMessage, ModelRequest

CALLS = []


def backend():
    def answer(request):
        CALLS.append(request)
        return "Sunny in " + request.messages[-1].content.split()[-1]

    return FunctionModel(answer, name="weather-llm")


@pytest.mark.carrier_cassette("weather")
async def test_weather(cassette):
    model = cassette.wrap(backend, label="large")
    response = await model.generate(
        ModelRequest(messages=[ChatMessage(role="user", content="Weather in {city}")])
    )
    assert response.text == "Sunny in Oslo"
    print("backend calls:", len(CALLS))
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    return pytester


def test_the_fixture_records_with_the_option_and_replays_without_it(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_weather=PROJECT_TEST.replace("{city}", "Oslo"))
    result = project.runpytest("-p", "carrier.testing", "--carrier-record", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*backend calls: 1*"])
    cassette = project.path / "cassettes" / "weather.yaml"
    assert "Weather in Oslo" in cassette.read_text()

    result = project.runpytest("-p", "carrier.testing", "-s")  # replay: no backend call
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*backend calls: 0*"])


def test_the_fixture_fails_a_changed_prompt_and_unused_recordings(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_weather=PROJECT_TEST.replace("{city}", "Oslo"))
    project.runpytest("-p", "carrier.testing", "--carrier-record").assert_outcomes(passed=1)

    project.makepyfile(test_weather=PROJECT_TEST.replace("{city}", "Rome"))
    result = project.runpytest("-p", "carrier.testing")
    result.assert_outcomes(failed=1)  # reported once, not again at teardown
    output = result.stdout.str()
    assert "messages[0].content differs" in output
    assert "recorded: 'Weather in Oslo'" in output
    assert "received: 'Weather in Rome'" in output
    assert "pytest --carrier-record test_weather.py::test_weather" in output

    unused = PROJECT_TEST.replace("{city}", "Oslo").replace(
        "    response = await", "    return\n    response = await"
    )
    project.makepyfile(test_weather=unused)
    result = project.runpytest("-p", "carrier.testing")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*1 of 1 recorded model calls*were never made*"])

    project.makepyfile(test_weather=unused.replace('("weather")', '("weather", strict=False)'))
    project.runpytest("-p", "carrier.testing").assert_outcomes(passed=1)


def test_without_a_cassette_replay_says_how_to_record(project: pytest.Pytester) -> None:
    project.makepyfile(test_weather=PROJECT_TEST.replace("{city}", "Oslo"))
    result = project.runpytest("-p", "carrier.testing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*No cassette at*pytest --carrier-record*"])
