"""``carrier serve`` as a user runs it: a subprocess hosting two agents on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from carrier_plugin_http import plugin

import carrier

CARRIER = Path(sys.executable).parent / "carrier"


def _environment(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CARRIER_") or key == "CARRIER_ALLOW_REMOTE_REQUESTS"
    }
    env.update(
        CARRIER_DATABASE_URL="memory://",
        CARRIER_MODEL_LARGE="echo",
        CARRIER_MODEL_SMALL="echo",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_HTTP_PORT=str(port),
        CARRIER_HTTP_UPLOAD_DIR=str(tmp_path / "uploads"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_plugin_adds_the_serve_command(host) -> None:
    host.register(plugin, name="http")
    assert "serve" in host.commands.names()
    assert isinstance(host.commands.create("serve"), carrier.Command)
    assert host.settings.get("http").port == 3000


async def test_serve_hosts_two_agents_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    files = []
    for name in ("Nova", "Ada"):
        path = tmp_path / f"{name.lower()}.json"
        path.write_text(json.dumps({"name": name, "bio": [f"{name} is a test agent."]}))
        files.append(str(path))
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        str(CARRIER),
        "serve",
        *files,
        env=_environment(tmp_path, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
            agents = (await client.get("/agents")).json()["agents"]
            assert sorted(a["name"] for a in agents) == ["Ada", "Nova"]
            for name in ("nova", "ADA"):
                reply = await client.post(f"/{name}/message", data={"text": "ping"})
                assert reply.status_code == 200, reply.text
                assert reply.json()[0]["text"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode in (0, 130), stderr.decode()
    assert f"on http://127.0.0.1:{port}/" in stderr.decode()


async def test_port_0_serves_on_a_free_port_and_says_which(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(CARRIER),
        "serve",
        "--port",
        "0",
        env=_environment(tmp_path, 1),  # --port wins over CARRIER_HTTP_PORT
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = []
    try:
        async with asyncio.timeout(60):
            while not (line := (await process.stderr.readline()).decode()).startswith(
                "carrier serve: "
            ):
                assert line, "".join(seen)  # exited before it said where it serves
                seen.append(line)
        url = line.rsplit(" on ", 1)[1].strip()
        assert not url.endswith(":0/"), line
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            (agent,) = (await client.get("/agents")).json()["agents"]
            for user in ("ada", "bob"):
                reply = await client.post(
                    f"/{agent['name']}/message",
                    data={"text": f"hello from {user}", "user_id": user},
                )
                assert reply.status_code == 200, reply.text
                assert f"hello from {user}" in reply.json()[0]["text"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode in (0, 130)


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        result = subprocess.run(
            [str(CARRIER), "serve"],
            env=_environment(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "carrier serve:" not in result.stderr  # it never served


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CARRIER), "serve", "--host", "0.0.0.0"],
        env=_environment(tmp_path, _free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CARRIER_HTTP_TOKEN" in result.stderr


async def test_carrier_start_serves_http_when_enabled_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = _environment(tmp_path, port)
    env.update(CARRIER_HTTP_START="true", CARRIER_PLUGINS="http")
    process = await asyncio.create_subprocess_exec(
        str(CARRIER),
        "start",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
            reply = await client.post("/nova/message", data={"text": "ping", "userId": "alice"})
            assert reply.status_code == 200, reply.text
            assert reply.json()[0]["text"] == "You said: ping"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert f"Nova on http:127.0.0.1:{port}" in stderr.decode()


def test_carrier_start_without_http_start_serves_nothing(tmp_path: Path) -> None:
    env = _environment(tmp_path, _free_port())
    env["CARRIER_PLUGINS"] = "http"
    result = subprocess.run(
        [str(CARRIER), "start"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "no client is enabled for Nova" in result.stderr
