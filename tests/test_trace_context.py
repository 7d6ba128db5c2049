"""``carrier_trace_context``: headers a message carries to another process, merged from
every plugin; a broken plugin is logged and skipped; the handling process's observers
get them in ``run_started``, and they are never stored."""

from __future__ import annotations

import logging

import pytest

import carrier
from carrier import AgentRuntime, Character, EventType, IncomingMessage, PluginHost
from carrier.emitting import trace_context
from carrier.testing import EventRecorder, FakeModel


class Headers:
    @carrier.hookimpl
    def carrier_trace_context(self, runtime, message, executor):  # type: ignore[no-untyped-def]
        return {"traceparent": f"for-{message.message_id}-{executor}"}


class Raises:
    @carrier.hookimpl
    def carrier_trace_context(self, runtime, message, executor):  # type: ignore[no-untyped-def]
        raise RuntimeError("tracer is broken")


class ReturnsAList:
    @carrier.hookimpl
    def carrier_trace_context(self, runtime, message, executor):  # type: ignore[no-untyped-def]
        return ["not", "headers"]


async def test_headers_are_merged_and_broken_plugins_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = PluginHost(autoload=False)
    for plugin, name in ((Headers(), "headers"), (Raises(), "raises"), (ReturnsAList(), "list")):
        host.register(plugin, name=name)
    async with AgentRuntime(
        Character(name="Ada"), host=host, models={"large": FakeModel(), "embedding": None}
    ) as agent:
        with caplog.at_level(logging.ERROR):
            headers = trace_context(
                agent, IncomingMessage(message_id="m1", trace_context={"baggage": "a=1"}), "workers"
            )
    assert headers == {"baggage": "a=1", "traceparent": "for-m1-workers"}
    assert "carrier_trace_context of 'raises' failed" in caplog.text
    assert "carrier_trace_context of 'list' returned 'list'" in caplog.text


async def test_run_started_carries_the_context_and_the_memory_does_not() -> None:
    host = PluginHost(autoload=False)
    recorder = EventRecorder()
    host.register(recorder, name="recorder")
    async with AgentRuntime(
        Character(name="Ada"), host=host, models={"large": FakeModel(), "embedding": None}
    ) as agent:
        for user in ("ada", "bob"):
            await agent.handle(
                IncomingMessage(
                    text=f"hi from {user}",
                    user_id=user,
                    message_id=f"m-{user}",
                    trace_context={"traceparent": f"00-{user}"},
                )
            )
        stored = await agent.store.get_memory("m-ada")
    started = {e.message_id: e.data["trace_context"] for e in recorder.of(EventType.RUN_STARTED)}
    assert started == {"m-ada": {"traceparent": "00-ada"}, "m-bob": {"traceparent": "00-bob"}}
    assert stored is not None
    assert "traceparent" not in stored.model_dump_json()
