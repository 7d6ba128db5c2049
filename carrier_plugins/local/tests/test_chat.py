"""Real generation with the shipped SmolLM2 model: persona, actions, structure, context."""

from __future__ import annotations

import asyncio
import json

import pytest
from carrier_plugin_local.actions import parse_action_answer, validate
from carrier_plugin_local.model import LocalModel
from carrier_plugin_local.plugin import build_model
from carrier_plugin_local.settings import LocalSettings

import carrier
from carrier.prompts import NO_ACTION
from carrier.types import ActionSpec, ChatMessage, ModelRequest

from .conftest import NOVA


def ask(text: str, **kwargs: object) -> ModelRequest:
    return ModelRequest(messages=[ChatMessage(role="user", content=text)], **kwargs)  # type: ignore[arg-type]


ACTIONS = [
    ActionSpec(
        name="GET_WEATHER",
        description="Get the weather forecast for a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    ),
    ActionSpec(
        name="SET_REMINDER",
        description="Remind the user of something after some minutes.",
        parameters={
            "type": "object",
            "properties": {"what": {"type": "string"}, "minutes": {"type": "integer"}},
            "required": ["what", "minutes"],
        },
    ),
    ActionSpec(
        name="PLAY_MUSIC",
        description="Play a song, an artist or a genre.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    ),
    ActionSpec(name="IGNORE", description="Stay silent: the message needs no answer."),
]

MESSAGES = [
    "What's the weather like in Paris today?",
    "Remind me to call my mother in 10 minutes.",
    "Play some jazz, please.",
    "Hello! How are you?",
    "Will it rain in Tokyo tomorrow?",
    "Put on something by the Beatles.",
    "Don't forget: take the pizza out in 15 minutes.",
    "ok",
    "Tell me a joke.",
    "What is the capital of Italy?",
    "I need an umbrella in London?",
    "Set a reminder for my meeting in 30 minutes.",
    "Can you play classical music?",
    "Thanks, bye!",
    "How hot is it in Cairo?",
    "What's 2 + 2?",
    "lol",
    "Remind me to drink water in an hour.",
    "Play the song Bohemian Rhapsody.",
    "Who are you?",
]


async def test_generates_text(model: LocalModel) -> None:
    response = await model.generate(ask("Say hello to me.", max_tokens=16, seed=1))
    assert response.text.strip()
    assert response.usage.output_tokens > 0
    assert response.usage.input_tokens > 0
    assert response.finish_reason in ("stop", "length")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_persona_answers_with_its_name(model: LocalModel, seed: int) -> None:
    request = ModelRequest(
        system=NOVA,
        messages=[ChatMessage(role="user", content="What is your name?")],
        max_tokens=24,
        seed=seed,
    )
    response = await model.generate(request)
    assert "nova" in response.text.lower()


async def test_plain_text_without_actions(model: LocalModel) -> None:
    prompt, mode = model.prepare(ask("Hello there", max_tokens=8, seed=1))
    assert mode == "text"
    assert prompt.json_schema is None
    assert "JSON" not in json.dumps(prompt.messages)


async def test_twenty_messages_with_four_actions_always_parse(model: LocalModel) -> None:
    offered = {a.name for a in ACTIONS}
    chosen: dict[str, int] = {}
    for index, text in enumerate(MESSAGES):
        request = ModelRequest(
            system="You are Nova, a helpful assistant.",
            messages=[ChatMessage(role="user", content=text)],
            actions=ACTIONS,
            seed=index,
        )
        prompt, mode = model.prepare(request)
        assert mode == "actions"
        result = await asyncio.to_thread(model.chat.complete, prompt)
        raw = result["choices"][0]["message"]["content"]
        answer = json.loads(raw)  # the grammar guarantees JSON
        assert answer["action"] in offered | {NO_ACTION}, raw
        reply, calls, problem = parse_action_answer(raw, ACTIONS)
        assert problem is None, (raw, problem)
        for call in calls:
            spec = next(a for a in ACTIONS if a.name == call.name)
            assert validate(call.arguments, spec.parameters) == []
        name = calls[0].name if calls else NO_ACTION
        chosen[name] = chosen.get(name, 0) + 1
        assert reply or calls, raw
    assert sum(chosen.values()) == len(MESSAGES)


async def test_generate_returns_action_calls(model: LocalModel) -> None:
    request = ModelRequest(
        system="You are Nova, a helpful assistant.",
        messages=[ChatMessage(role="user", content="What's the weather in Paris?")],
        actions=ACTIONS,
        seed=3,
    )
    response = await model.generate(request)
    assert all(call.name in {a.name for a in ACTIONS} for call in response.action_calls)
    assert not response.text.startswith("{")


async def test_structured_output(model: LocalModel) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    request = ask("Describe a person named Bob who is 30, as JSON.", response_schema=schema, seed=1)
    response = await model.generate(request)
    assert isinstance(response.structured, dict)
    assert validate(response.structured, schema) == []
    assert json.loads(response.text) == response.structured


def test_count_tokens_uses_the_models_tokenizer(model: LocalModel) -> None:
    assert model.count_tokens("Hello world") == 2
    assert model.count_tokens("12345") == 5  # SmolLM2 splits digits


async def test_prompt_count_matches_the_engine(model: LocalModel) -> None:
    request = ModelRequest(
        system="You are Nova.",
        messages=[ChatMessage(role="user", content="Count me, please: 1, 22, 333.")],
        max_tokens=1,
        seed=1,
    )
    prompt, _mode = model.prepare(request)
    response = await model.generate(request)
    assert model.chat.count_prompt(prompt.messages) - 8 == response.usage.input_tokens


async def test_long_history_is_trimmed_to_the_context_window() -> None:
    model = build_model(LocalSettings(_env_file=None, context_size=1024))
    history = [
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"Message {i}. " * 30)
        for i in range(40)
    ]
    request = ModelRequest(
        system=NOVA,
        messages=[*history, ChatMessage(role="user", content="What is your name?")],
        max_tokens=16,
        seed=1,
    )
    prompt, _mode = model.prepare(request)
    assert prompt.dropped > 0
    assert prompt.messages[0]["content"] == NOVA
    assert prompt.messages[-1]["content"] == "What is your name?"
    response = await model.generate(request)
    assert response.text
    assert response.usage.input_tokens + 16 <= 1024
    await model.aclose()


async def test_a_prompt_that_cannot_fit_is_rejected(model: LocalModel) -> None:
    request = ModelRequest(system="word " * 5000, messages=[ChatMessage(role="user", content="hi")])
    with pytest.raises(carrier.ModelRejectedError, match="context window is 2048 tokens"):
        await model.generate(request)


async def test_a_repeated_prompt_prefix_is_reported_as_read_from_the_cache(
    model: LocalModel,
) -> None:
    first = await model.generate(ask("Tell me about the sea.", max_tokens=4, seed=1))
    again = await model.generate(ask("Tell me about the sea.", max_tokens=4, seed=1))
    assert first.usage.cache_read_input_tokens is not None
    assert again.usage.cache_read_input_tokens is not None
    # the second prompt's shared prefix (all of it but the last token) came from llama.cpp's cache
    assert again.usage.cache_read_input_tokens >= again.usage.input_tokens // 2
    assert again.usage.cache_read_input_tokens <= again.usage.input_tokens
