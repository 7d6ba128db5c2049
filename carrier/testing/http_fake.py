"""``FakeServer``: a small scripted HTTP/1.1 server on 127.0.0.1, for plugin tests.

Point a real SDK at ``server.url`` and script its answers: each request is recorded
and answered by ``handler(request) -> Reply`` (a JSON body, raw bytes, a stream of
server-sent events, or a dropped connection). It runs on the test's event loop;
``async with FakeServer(handler) as server`` closes every connection on exit.
Loopback only, so the remote-request guard of ``carrier.testing`` lets it through.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeServer", "Handler", "Recorded", "Reply"]


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """How to answer: ``json``, raw ``body``, ``sse`` events ``(event, data)``, or ``drop``."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[tuple[str | None, Any]] | None = None
    drop: bool = False


Handler = Callable[[Recorded], "Reply | Awaitable[Reply]"]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    529: "Overloaded",
}


class FakeServer:
    """Answers HTTP requests on 127.0.0.1 with ``handler``; records them in ``requests``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Recorded(method, path, headers, body)
                self.requests.append(request)
                reply = self.handler(request)
                if not isinstance(reply, Reply):
                    reply = await reply
                if reply.drop:
                    return
                await self._write(writer, reply)
                if reply.sse is not None:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
        headers = dict(reply.headers)
        reason = _REASONS.get(reply.status, "Status")
        if reply.sse is not None:
            headers.setdefault("content-type", "text/event-stream")
            headers["connection"] = "close"
            payload = b"".join(_event(name, data) for name, data in reply.sse)
        else:
            if reply.body is not None:
                payload = reply.body
            else:
                payload = json.dumps(reply.json if reply.json is not None else {}).encode()
                headers.setdefault("content-type", "application/json")
            headers["content-length"] = str(len(payload))
        head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n" + payload)
        await writer.drain()


def _event(name: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {name}\n" if name else ""
    return f"{prefix}data: {text}\n\n".encode()
