"""``carrier serve`` with ``CARRIER_EXECUTOR=workers`` enqueues: the HTTP answer
comes from a worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from carrier_plugin_http.app import create_app
from carrier_plugin_http.hub import AgentHub
from carrier_plugin_http.server import running_server
from carrier_plugin_http.settings import HttpSettings

from carrier.host import PluginHost
from carrier.runtime import AgentRuntime


async def test_the_http_api_answers_through_a_worker(
    host: PluginHost,
    client: AgentRuntime,
    start_worker: Callable[[], Awaitable[None]],
) -> None:
    await start_worker()
    app = create_app(AgentHub([client], host=host), HttpSettings(_env_file=None))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(
            f"/{client.agent_id}/message", json={"text": "hello worker", "userId": "u1"}
        )
        assert answer.status_code == 200, answer.text
        assert [c["text"] for c in answer.json()] == ["re: hello worker"]
        stored = await client.store.get_memories(
            agent_id=client.agent_id, room_id=f"default-room-{client.agent_id}-u1", limit=10
        )
        assert sorted(m.content.text for m in stored) == ["hello worker", "re: hello worker"]
