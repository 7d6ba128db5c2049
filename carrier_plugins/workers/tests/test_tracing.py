"""One message, one trace, across two processes: the client that enqueued it records
the hand-off, and the ``carrier worker`` process that answered it (exporting over OTLP
to a receiver on 127.0.0.1) continues the same trace from the job's headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import carrier_plugin_sql.plugin
import carrier_plugin_workers.plugin
import pytest
from carrier_plugin_otel.testing import OtlpReceiver, Telemetry

from carrier.host import PluginHost
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.types import IncomingMessage

from .test_processes import CARRIER, Workers
from .test_processes import worker_env as worker_env  # the fixture, for this module


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


async def test_a_message_answered_by_a_worker_process_is_one_trace(
    database: str, worker_env: dict[str, str], receiver: OtlpReceiver
) -> None:
    workers = Workers(
        {
            **worker_env,
            "CARRIER_PLUGINS": "sql,workers,otel",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_SERVICE_NAME": "carrier-worker",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    telemetry = Telemetry()
    settings = CarrierSettings(
        database_url=database,
        executor="workers",
        model_large="echo",
        model_embedding="none",
        _env_file=None,
    )
    host = PluginHost(settings=settings, autoload=False)
    host.register(carrier_plugin_sql.plugin, name="sql")
    host.register(carrier_plugin_workers.plugin, name="workers")
    host.register(telemetry.observer(), name="otel")
    try:
        workers.start([str(CARRIER), "worker"])
        async with AgentRuntime(host=host) as client:
            replies = await asyncio.gather(
                client.handle(IncomingMessage(text="hi from ada", user_id="ada", room_id="a")),
                client.handle(IncomingMessage(text="hi from bob", user_id="bob", room_id="b")),
            )
        assert [r.error for r in replies] == [None, None]
        async with asyncio.timeout(20):
            # the worker's batch processor exports every 100 ms, on a thread of its own
            while len([s for s in receiver.spans() if s.name.startswith("invoke_agent")]) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        workers.stop()
        telemetry.shutdown()

    handoffs = [s for s in telemetry.spans() if s.name.startswith("enqueue ")]
    assert len(handoffs) == 2
    runs = {bytes(s.trace_id): s for s in receiver.spans() if s.name.startswith("invoke_agent")}
    for handoff in handoffs:
        assert handoff.context is not None
        assert handoff.attributes is not None
        assert handoff.attributes["carrier.executor"] == "workers"
        trace_id = handoff.context.trace_id.to_bytes(16, "big")
        run = runs[trace_id]  # the worker's span is in the hand-off's trace ...
        assert run.parent_span_id == handoff.context.span_id.to_bytes(8, "big")  # ... under it
        room = {a.key: a.value.string_value for a in run.attributes}["gen_ai.conversation.id"]
        assert room == handoff.attributes["gen_ai.conversation.id"]
    assert len(runs) == 2  # each message its own trace
    # the worker's model call is part of the same trace
    chats = [s for s in receiver.spans() if s.name.startswith("chat ")]
    assert {bytes(s.trace_id) for s in chats} == set(runs)
