"""Fault injection through the local Messages-API server and the kernel's retry loop.

``AgentRuntime.handle`` answers through ``ModelChain`` (the one retry loop); the SDK
client has ``max_retries=0``, so every retry below is the kernel's and shows up as a
``model_retry`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import Counter

import carrier_plugin_anthropic.plugin
import pytest
from anthropic_fakes import FakeServer, Recorded, Reply, error_body, message

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.testing import EventRecorder
from carrier.types import EventType

KEY = "sk-ant-api03-secret-fault-key-0123456789"
MESSAGES = 200
FAILURE_RATE = 0.3
_TAG = re.compile(r"msg-(\d+)")


def _agent(host: PluginHost, models: dict[str, str | None]) -> AgentRuntime:
    return AgentRuntime(
        Character(name="Testy", bio=["A careful test agent."]),
        host=host,
        store=InMemoryStore(),
        models=models,
    )


@pytest.fixture
def anthropic_host(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CARRIER_ANTHROPIC_API_KEY", KEY)
    host.register(carrier_plugin_anthropic.plugin, name="anthropic")
    return host


def _tag(request: Recorded) -> str:
    last = request.json["messages"][-1]["content"]
    found = _TAG.findall(last if isinstance(last, str) else json.dumps(last))
    assert found, last
    return found[-1]


async def test_transient_failures_lose_and_duplicate_nothing(
    anthropic_host: PluginHost,
    events: EventRecorder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30% of requests fail (429 with retry-after, 529, 500, dropped connection);
    every one of 200 messages is answered exactly once."""
    caplog.set_level(logging.DEBUG)
    rng = random.Random(5)
    attempts: Counter[str] = Counter()
    failures = [
        Reply(
            status=429,
            json=error_body("rate_limit_error", "Slow down."),
            headers={"retry-after": "0"},
        ),
        Reply(status=529, json=error_body("overloaded_error", "Overloaded")),
        Reply(status=500, json=error_body("api_error", "Internal server error")),
        Reply(drop=True),
    ]
    injected = 0

    def handler(request: Recorded) -> Reply:
        nonlocal injected
        tag = _tag(request)
        attempts[tag] += 1
        # A message fails at most twice in a row, so the 4-attempt policy always wins.
        if attempts[tag] <= 2 and rng.random() < FAILURE_RATE:
            injected += 1
            return failures[injected % len(failures)]
        return Reply(json=message(f"answer to msg-{tag}"))

    async with FakeServer(handler) as server:
        monkeypatch.setenv("CARRIER_ANTHROPIC_BASE_URL", server.url)
        async with _agent(
            anthropic_host, {"large": "anthropic", "small": "anthropic", "embedding": None}
        ) as agent:
            replies = await asyncio.gather(
                *(
                    agent.handle(
                        IncomingMessage(text=f"Hello, msg-{i}", user_id="ada", room_id=f"room-{i}")
                    )
                    for i in range(MESSAGES)
                )
            )
            stored = [
                await agent.store.get_memories(agent_id=agent.agent_id, room_id=f"room-{i}")
                for i in range(MESSAGES)
            ]
    assert [r.error for r in replies] == [None] * MESSAGES
    assert [r.texts for r in replies] == [[f"answer to msg-{i}"] for i in range(MESSAGES)]
    assert all(len(room) == 2 for room in stored)  # the message and one answer, no more
    total = len(server.requests)
    assert total == MESSAGES + injected
    assert 0.2 < injected / total < 0.4
    retries = events.of(EventType.MODEL_RETRY)
    assert len(retries) == injected
    assert {e.data["model"] for e in retries} == {"anthropic:claude-sonnet-4-5"}
    assert not events.of(EventType.MODEL_FALLBACK)
    dumped = json.dumps([e.model_dump(mode="json") for e in events.events])
    assert KEY not in dumped
    assert KEY not in caplog.text


async def test_permanent_401_fails_fast_without_retry(
    anthropic_host: PluginHost,
    events: EventRecorder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: Recorded) -> Reply:
        return Reply(status=401, json=error_body("authentication_error", "invalid x-api-key"))

    async with FakeServer(handler) as server:
        monkeypatch.setenv("CARRIER_ANTHROPIC_BASE_URL", server.url)
        async with _agent(
            anthropic_host, {"large": "anthropic", "small": "anthropic", "embedding": None}
        ) as agent:
            loop = asyncio.get_running_loop()
            started = loop.time()
            reply = await agent.handle(IncomingMessage(text="msg-1", user_id="ada", room_id="r"))
            elapsed = loop.time() - started
    assert len(server.requests) == 1
    assert elapsed < 2.0
    assert reply.error is not None
    assert "HTTP 401" in reply.error
    assert "CARRIER_ANTHROPIC_API_KEY" in reply.error
    assert not events.of(EventType.MODEL_RETRY)
    for text in (
        reply.error,
        caplog.text,
        json.dumps([e.model_dump(mode="json") for e in events.events]),
    ):
        assert KEY not in text


async def test_dead_primary_falls_back_to_the_next_backend(
    anthropic_host: PluginHost, events: EventRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``anthropic -> echo``: a server that drops every connection fails the primary
    (after the kernel's retries), and the builtin echo model answers."""
    monkeypatch.setattr(anthropic_host.carrier_settings, "model_retry_attempts", 2)
    async with FakeServer(lambda r: Reply(drop=True)) as server:
        monkeypatch.setenv("CARRIER_ANTHROPIC_BASE_URL", server.url)
        chain = "anthropic -> echo"
        async with _agent(
            anthropic_host, {"large": chain, "small": chain, "embedding": None}
        ) as agent:
            reply = await agent.handle(
                IncomingMessage(text="msg-1 hello", user_id="ada", room_id="r")
            )
    assert reply.error is None
    assert reply.texts
    (fallback,) = events.of(EventType.MODEL_FALLBACK)
    assert fallback.data["from"] == "anthropic:claude-sonnet-4-5"
    assert fallback.data["to"].startswith("echo")
    assert len(server.requests) == len(events.of(EventType.MODEL_RETRY)) + 1
