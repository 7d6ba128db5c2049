"""A server without a token serves this machine only: other web sites' pages cannot post
to it (cross-site form posts, no-cors fetches) and a foreign ``Host`` (DNS rebinding)
is refused. With a token, neither check is needed unless hosts are configured."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from carrier_plugin_http.middleware import split_host
from pydantic import SecretStr


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


async def test_a_cross_site_post_is_refused_on_a_tokenless_server(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        port = port_of(served.url)
        foreign = [
            "http://evil.example",
            "null",  # sandboxed frames, file:// pages
            f"http://localhost:{port + 1}",  # another program on this machine
            f"http://127.0.0.1.evil.example:{port}",
            "not a url",
        ]
        for origin in foreign:
            for path in ("/Testy/message", "/Testy/message/stream"):
                refused = await client.post(
                    path,
                    data={"text": "send my secrets away", "userId": "victim"},
                    headers={"Origin": origin},
                )
                assert refused.status_code == 403, (origin, refused.text)
                body = refused.json()
                assert "another web site" in body["error"]
                assert body["requestId"] == refused.headers["x-request-id"]
        no_origin = await client.post(
            "/Testy/message",
            data={"text": "x", "userId": "victim"},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert no_origin.status_code == 403
        assert await served.store.get_rooms_for_entity("victim") == []
        own = [served.url, f"http://localhost:{port}", f"http://[::1]:{port}", None]
        for origin in own:
            headers = {"Origin": origin} if origin else {}
            sent = await client.post("/Testy/message", json={"text": "hi"}, headers=headers)
            assert sent.status_code == 200, (origin, sent.text)
        reads = await client.get("/agents", headers={"Origin": "http://evil.example"})
        assert reads.status_code == 200  # reading needs CORS, which is off


async def test_a_foreign_host_is_refused_on_a_tokenless_server(serve_agents) -> None:
    async with serve_agents() as served, served.client() as client:
        port = port_of(served.url)
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil"):
            for method, path in (
                ("GET", "/agents"),
                ("GET", "/health"),
                ("POST", "/Testy/message"),
            ):
                refused = await client.request(
                    method, path, json={"text": "x"}, headers={"Host": host}
                )
                assert refused.status_code == 400, (host, path)
                assert "CARRIER_HTTP_ALLOWED_HOSTS" in refused.json()["error"]
        for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1", "LOCALHOST."):
            assert (await client.get("/agents", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_and_cors_origins_are_let_in(serve_agents, settings_with) -> None:
    settings = settings_with(
        allowed_hosts=["Chat.Example.org"], cors_origins=["https://app.example.net"], host="box"
    )
    async with serve_agents(settings=settings) as served, served.client() as client:
        port = port_of(served.url)
        for host in (f"chat.example.org:{port}", "box"):
            assert (await client.get("/agents", headers={"Host": host})).status_code == 200
        assert (await client.get("/agents", headers={"Host": "other.org"})).status_code == 400
        for origin, status in (
            (f"http://chat.example.org:{port}", 200),
            ("https://app.example.net", 200),
            (f"http://chat.example.org:{port + 1}", 403),
        ):
            sent = await client.post(
                "/Testy/message", json={"text": "hi"}, headers={"Origin": origin}
            )
            assert sent.status_code == status, origin


async def test_with_a_token_other_hosts_and_origins_are_allowed(
    serve_agents, settings_with
) -> None:
    settings = settings_with(token=SecretStr("t0k"))
    async with serve_agents(settings=settings) as served, served.client("t0k") as client:
        headers = {"Host": "carrier.example.org", "Origin": "https://app.example.org"}
        assert (await client.get("/agents", headers=headers)).status_code == 200
        sent = await client.post("/Testy/message", json={"text": "hi"}, headers=headers)
        assert sent.status_code == 200
    settings = settings_with(token=SecretStr("t0k"), allowed_hosts=["carrier.example.org"])
    async with serve_agents(settings=settings) as served, served.client("t0k") as client:
        assert (await client.get("/agents", headers={"Host": "carrier.example.org"})).is_success
        assert (await client.get("/agents", headers={"Host": "evil.example"})).status_code == 400


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ("127.0.0.1:3000", ("127.0.0.1", 3000)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::1]", ("::1", None)),
        ("LocalHost.", ("localhost", None)),
        ("example.org:http", ("example.org", None)),
        ("", ("", None)),
    ],
)
def test_split_host(header: str, found: tuple[str, int | None]) -> None:
    assert split_host(header) == found
