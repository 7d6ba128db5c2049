"""Bad requests get a 4xx and a JSON body ``{"error": "..."}``, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from carrier_plugin_http.security import RateLimiter, check_bind_address, is_loopback
from carrier_plugin_http.settings import HttpSettings
from pydantic import SecretStr

from carrier.errors import ConfigurationError

CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("missing text (form)", "/Testy/message", {"data": {"roomId": "r"}}, 400, "text"),
    ("missing text (json)", "/Testy/message", {"json": {"userId": "u"}}, 400, "text"),
    ("empty text", "/Testy/message", {"json": {"text": ""}}, 400, "text"),
    ("text is a number", "/Testy/message", {"json": {"text": 5}}, 400, "string"),
    ("roomId is a list", "/Testy/message", {"json": {"text": "x", "roomId": [1]}}, 400, "roomId"),
    ("bad room id", "/Testy/message", {"json": {"text": "x", "roomId": "a/b"}}, 400, "roomId"),
    ("room id '..'", "/Testy/message", {"json": {"text": "x", "roomId": ".."}}, 400, "roomId"),
    ("user id '.'", "/Testy/message", {"json": {"text": "x", "userId": "."}}, 400, "userId"),
    (
        "not json",
        "/Testy/message",
        {"content": b"{nope", "headers": {"content-type": "application/json"}},
        400,
        "JSON",
    ),
    ("json array", "/Testy/message", {"json": ["text"]}, 400, "object"),
    (
        "plain text body",
        "/Testy/message",
        {"content": b"hi", "headers": {"content-type": "text/plain"}},
        415,
        "content type",
    ),
    (
        "two files",
        "/Testy/message",
        {"data": {"text": "x"}, "files": [("file", ("a", b"1")), ("file", ("b", b"2"))]},
        400,
        "form",
    ),
    (
        "file under another name",
        "/Testy/message",
        {"data": {"text": "x"}, "files": {"doc": ("a", b"1")}},
        400,
        "file",
    ),
    ("unknown agent", "/nobody/message", {"json": {"text": "x"}}, 404, "nobody"),
    ("stream to unknown agent", "/nobody/message/stream", {"json": {"text": "x"}}, 404, "nobody"),
    ("body too large", "/Testy/message", {"json": {"text": "x" * 3000}}, 413, "larger"),
    (
        "file too large",
        "/Testy/message",
        {"data": {"text": "x"}, "files": {"file": ("big", b"0" * 9000)}},
        413,
        "larger",
    ),
]


@pytest.fixture
def small_limits(http_settings: HttpSettings) -> HttpSettings:
    return http_settings.model_copy(update={"max_body_bytes": 2000, "max_upload_bytes": 8000})


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_message_requests(serve_agents, small_limits, path, kwargs, status, says) -> None:
    async with serve_agents(settings=small_limits) as served, served.client() as client:
        response = await client.post(path, **kwargs)
        assert response.status_code == status, response.text
        assert says.lower() in response.json()["error"].lower()


async def test_a_chunked_body_over_the_limit_is_413(serve_agents, small_limits) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b'{"text": "' + b"x" * 500 + b'"}'

    async with serve_agents(settings=small_limits) as served, served.client() as client:
        response = await client.post(
            "/Testy/message", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert "larger" in response.json()["error"]
        ok = await client.post(
            "/Testy/message", content=_one(b'{"text": "hi"}'), headers={"content-type": "x/json"}
        )
        assert ok.status_code == 415


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data


@pytest.mark.parametrize(
    ("params", "says"),
    [({"limit": 0}, "limit"), ({"limit": "many"}, "limit"), ({"before": "yesterday"}, "before")],
)
async def test_bad_query_parameters(serve_agents, params, says) -> None:
    async with serve_agents() as served, served.client() as client:
        response = await client.get("/agents/Testy/rooms/r/memories", params=params)
        assert response.status_code == 400
        assert says in response.json()["error"]


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "needs a bearer token"),
        ({"Authorization": "Bearer wrong"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer <token>"),
        ({"Authorization": "Token abc"}, "Bearer <token>"),
    ],
)
async def test_bad_or_missing_token_is_401(serve_agents, http_settings, headers, says) -> None:
    settings = http_settings.model_copy(update={"token": SecretStr("right-token")})
    async with serve_agents(settings=settings) as served, served.client() as client:
        for method, path in (("GET", "/agents"), ("POST", "/Testy/message")):
            response = await client.request(method, path, json={"text": "x"}, headers=headers)
            assert response.status_code == 401
            assert says in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"
            assert "right-token" not in response.text
        async with served.client("right-token") as allowed:
            assert (await allowed.get("/agents")).status_code == 200
        assert (await client.get("/health")).status_code == 200


async def test_unknown_route_is_a_json_404(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        response = await client.get("/no/such/route")
        assert response.status_code == 404
        assert response.json()["error"] == "Not Found"
        assert response.json()["requestId"] == response.headers["x-request-id"]


def test_no_token_means_loopback_only() -> None:
    open_settings = HttpSettings(_env_file=None)
    for address in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind_address(address, open_settings)
    for address in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        assert not is_loopback(address)
        with pytest.raises(ConfigurationError, match="CARRIER_HTTP_TOKEN"):
            check_bind_address(address, open_settings)
    check_bind_address("0.0.0.0", HttpSettings(_env_file=None, token=SecretStr("t")))


def test_rate_limiter_refills_and_forgets_idle_clients() -> None:
    limiter = RateLimiter(per_minute=60, burst=2, max_clients=2)
    assert limiter.acquire("a", now=0.0) == 0
    assert limiter.acquire("a", now=0.0) == 0
    assert limiter.acquire("a", now=0.0) == pytest.approx(1.0)
    assert limiter.acquire("a", now=1.0) == 0
    limiter.acquire("b", now=1.0)
    limiter.acquire("c", now=1.0)
    assert "a" not in limiter._buckets
    assert not RateLimiter(per_minute=0, burst=1).enabled
