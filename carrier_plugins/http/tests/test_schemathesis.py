"""Schemathesis against the served OpenAPI schema: generated requests never get a 5xx.

Hypothesis drives schemathesis in a worker thread (its calls are blocking) while
the server runs in the test's event loop. Examples per operation stay modest.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from carrier.character import Character
from carrier.testing import FakeModel

EXAMPLES = 25


async def test_generated_requests_never_get_a_server_error(serve_agents) -> None:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    nova = Character(name="Nova")
    async with serve_agents([nova], model=FakeModel(default_text="fine")) as served:
        async with httpx.AsyncClient(base_url=served.url) as client:
            document = (await client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document)
        agent_id = served.runtimes[0].agent_id
        tried: list[str] = []
        statuses: list[int] = []

        def run() -> None:
            for result, mode in itertools.product(
                schema.get_all_operations(), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ):
                operation = result.ok()
                tried.append(f"{operation.method.upper()} {operation.path}")

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: schemathesis.Case) -> None:
                    # half the time a real agent, so requests get past the 404
                    path = case.path_parameters or {}
                    if "agent_id" in path and zlib.crc32(repr(case.body).encode()) % 2:
                        path["agent_id"] = agent_id
                    response = case.call(base_url=served.url, timeout=10)
                    statuses.append(response.status_code)
                    case.validate_response(response, checks=[not_a_server_error])

                try:
                    check()
                except Unsatisfiable:
                    if mode is GenerationMode.POSITIVE:
                        raise  # only operations without inputs have no negative cases

        await asyncio.to_thread(run)
    assert 200 in statuses  # some generated messages were answered
    assert 400 in statuses  # and some were refused
    assert all(status < 500 for status in statuses)
    assert "POST /{agent_id}/message" in tried
    room = "/agents/{agent_id}/rooms/{room_id}"
    assert f"GET {room}/memories" in tried
    assert f"GET {room}/memories/{{memory_id}}/attachments/{{attachment_id}}" in tried
