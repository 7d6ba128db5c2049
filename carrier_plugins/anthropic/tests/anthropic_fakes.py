"""A small scripted HTTP/1.1 server on 127.0.0.1 (asyncio), for SDKs to talk to.

Each request is recorded and answered by ``handler(request) -> Reply``: a JSON body,
a stream of server-sent events, or a dropped connection. It runs on the test's event
loop; ``async with FakeServer(handler) as server`` closes every connection on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeServer", "Recorded", "Reply"]


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


# ---- Anthropic-documented bodies ---------------------------------------------------

MODEL = "claude-sonnet-4-5-20250929"


def message(
    text: str | None = "Hello!",
    *,
    tool_use: list[tuple[str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 9,
) -> dict[str, Any]:
    """A Messages API ``message``: optional text block, then ``tool_use`` blocks."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_use:
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def text_stream(*pieces: str, input_tokens: int = 25, output_tokens: int = 15) -> list[Any]:
    """The documented SSE sequence of a streamed text answer."""
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message(None, input_tokens=input_tokens, output_tokens=1),
                    "stop_reason": None,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
        for piece in pieces
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def tool_stream(
    name: str, json_parts: list[str], call_id: str = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
) -> list[Any]:
    """The documented SSE sequence of a text block followed by a streamed ``tool_use``."""
    events = text_stream("Let me check.")[:-3]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": part},
            },
        )
        for part in json_parts
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 89},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def error_body(type_: str, message_: str) -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": type_, "message": message_}}
