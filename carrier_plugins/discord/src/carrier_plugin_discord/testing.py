"""``FakeDiscord``: Discord's REST API and gateway on 127.0.0.1, for tests and benchmarks.

Point the client at it with ``CARRIER_DISCORD_API_BASE=fake.url`` and
``CARRIER_DISCORD_GATEWAY_URL=fake.gateway_url`` (``fake.settings()`` gives both with the
token). The gateway speaks plain-text JSON frames: HELLO, heartbeat ACKs, READY and a
``GUILD_CREATE`` per guild after IDENTIFY, the missed events and ``RESUMED`` after RESUME.
Tests push events with :meth:`FakeDiscord.dispatch` (payload builders:
:meth:`FakeDiscord.message`, :meth:`FakeDiscord.interaction`, ...) and read what the
client did from ``sent``, ``typing``, ``reactions``, ``callbacks``, ``followups`` and
``commands``. The REST side answers in-process; ``rate_limit()`` makes the next calls
answer 429 with ``retry_after``, ``fail_followups()`` makes the next follow-ups fail
with a server error, and ``rest_latency_s`` models Discord's own delay.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

__all__ = ["FakeDiscord"]

#: Close codes after which Discord refuses a RESUME (bad token, sharding, intents).
_FATAL_CLOSES = frozenset({4004, 4010, 4011, 4012, 4013, 4014})

TIMESTAMP = "2026-01-01T00:00:00+00:00"
ADMINISTRATOR = 1 << 3


@dataclass
class _Event:
    seq: int
    name: str
    data: dict[str, Any]
    delivered: bool = False


@dataclass
class _Gateway:
    socket: web.WebSocketResponse
    queue: asyncio.Queue[_Event] = field(default_factory=asyncio.Queue)


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with the exact ``Content-Type`` discord.py checks for (no charset)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class FakeDiscord:
    """A Discord server for one bot.

    Args:
        bot_id: The bot user's id.
        app_id: The application's id.
        token: The token it accepts (any other gets 401).
        rest_latency_s: How long each ``POST .../messages`` takes to answer.
    """

    def __init__(
        self,
        *,
        bot_id: int = 4_000_000_000_000_001,
        app_id: int = 4_000_000_000_000_002,
        token: str = "fake-discord-token",
        bot_name: str = "carrierbot",
        rest_latency_s: float = 0.0,
    ) -> None:
        self.bot_id = bot_id
        self.app_id = app_id
        self.token = token
        self.bot_name = bot_name
        self.rest_latency_s = rest_latency_s
        self.guilds: dict[int, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self._sent_by_channel: dict[int, list[dict[str, Any]]] = {}
        self.typing: list[int] = []
        self.reactions: list[tuple[int, int, str]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.followups: list[dict[str, Any]] = []
        self.commands: dict[int, list[dict[str, Any]]] = {}
        self.rate_limited: list[float] = []
        self.identifies = 0
        self.resumes: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(5_000_000_000_000_000)
        self._seq = itertools.count(1)
        self._log: list[_Event] = []
        self._gateway: _Gateway | None = None
        self._limits: list[float] = []
        self._followup_failures: list[int] = []
        self._session = "fake-session"
        #: After a fatal close (4004, 4010-4014): refuse RESUME with it, as Discord does,
        #: until the client IDENTIFYs afresh.
        self._fatal: int | None = None
        #: The heartbeat interval HELLO asks for (Discord's own).
        self.heartbeat_ms = 41250
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ---- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(site.name.rsplit(":", 1)[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._gateway is not None:
            await self._gateway.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """The REST API root (``CARRIER_DISCORD_API_BASE``)."""
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway (``CARRIER_DISCORD_GATEWAY_URL``)."""
        return f"ws://127.0.0.1:{self._port}/gateway"

    def settings(self, **more: Any) -> dict[str, str]:
        """A character's ``DISCORD_*`` secrets pointing at this server."""
        values = {"token": self.token, "api_base": self.url, "gateway_url": self.gateway_url}
        values.update(more)
        return {f"DISCORD_{k.upper()}": str(v) for k, v in values.items()}

    # ---- building payloads --------------------------------------------------------------

    def snowflake(self) -> int:
        """A new id."""
        return next(self._ids)

    def user(self, user_id: int, *, name: str | None = None, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": name or f"user{user_id}",
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
        }

    def add_guild(
        self,
        guild_id: int,
        *,
        channels: dict[int, int] | None = None,
        threads: dict[int, int] | None = None,
        roles: dict[int, int] | None = None,
        owner_id: int = 1,
    ) -> dict[str, Any]:
        """A guild sent in each ``GUILD_CREATE``: ``channels`` maps id to type (0 text,
        15 forum), ``threads`` maps thread id to parent channel, ``roles`` maps role id
        to its permission bits."""
        roles_payload = [
            {"id": str(guild_id), "name": "@everyone", "permissions": "0", "position": 0}
        ] + [
            {"id": str(rid), "name": f"role{rid}", "permissions": str(bits), "position": 1}
            for rid, bits in (roles or {}).items()
        ]
        guild = {
            "id": str(guild_id),
            "name": f"guild{guild_id}",
            "owner_id": str(owner_id),
            "unavailable": False,
            "member_count": 2,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": roles_payload,
            "channels": [
                {
                    "id": str(cid),
                    "type": ctype,
                    "name": f"channel{cid}",
                    "position": 0,
                    "guild_id": str(guild_id),
                    "permission_overwrites": [],
                }
                for cid, ctype in (channels or {}).items()
            ],
            "threads": [
                {
                    "id": str(tid),
                    "type": 11,
                    "name": f"thread{tid}",
                    "guild_id": str(guild_id),
                    "parent_id": str(parent),
                    "owner_id": str(owner_id),
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": TIMESTAMP,
                        "locked": False,
                    },
                    "message_count": 0,
                    "member_count": 1,
                }
                for tid, parent in (threads or {}).items()
            ],
            "members": [],
            "voice_states": [],
            "presences": [],
        }
        self.guilds[guild_id] = guild
        return guild

    def message(
        self,
        *,
        channel_id: int,
        user_id: int,
        content: str,
        guild_id: int | None = None,
        roles: list[int] | None = None,
        mentions_bot: bool = False,
        bot: bool = False,
        reply_to: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A ``MESSAGE_CREATE`` payload (a DM when ``guild_id`` is ``None``)."""
        mid = message_id or self.snowflake()
        text = f"<@{self.bot_id}> {content}" if mentions_bot else content
        data: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 19 if reply_to else 0,
            "content": text,
            "author": self.user(user_id, bot=bot),
            "attachments": attachments or [],
            "embeds": [],
            "mentions": [self.user(self.bot_id, name=self.bot_name, bot=True)]
            if mentions_bot
            else [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            data["member"] = {
                "roles": [str(r) for r in roles or []],
                "joined_at": TIMESTAMP,
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        if reply_to is not None:
            data["message_reference"] = {
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                **({"guild_id": str(guild_id)} if guild_id else {}),
            }
            data["referenced_message"] = reply_to
        return data

    def attachment(self, name: str, data: bytes, *, content_type: str) -> dict[str, Any]:
        """An attachment whose content this server serves."""
        self.files[name] = data
        url = f"http://127.0.0.1:{self._port}/files/{name}"
        return {
            "id": str(self.snowflake()),
            "filename": name,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    def reaction(
        self,
        *,
        channel_id: int,
        message_id: int,
        user_id: int,
        emoji: str,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """A ``MESSAGE_REACTION_ADD`` payload."""
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(channel_id),
            "message_id": str(message_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            data["member"] = {
                "user": self.user(user_id),
                "roles": [],
                "joined_at": TIMESTAMP,
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        return data

    def interaction(
        self,
        *,
        channel_id: int,
        user_id: int,
        guild_id: int | None = None,
        command: str | None = None,
        options: dict[str, Any] | None = None,
        custom_id: str | None = None,
        roles: list[int] | None = None,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An ``INTERACTION_CREATE`` payload: a slash ``command`` with ``options``, or
        a button press (``custom_id``) on ``message`` (a message payload; by default
        one of the bot's)."""
        iid = self.snowflake()
        data: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "token": f"interaction-token-{iid}",
            "version": 1,
            "channel_id": str(channel_id),
            "channel": {
                "id": str(channel_id),
                "type": 0 if guild_id else 1,
                **({"guild_id": str(guild_id), "name": "c"} if guild_id else {}),
            },
            "locale": "en-US",
            "attachment_size_limit": 8 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": {},
            "app_permissions": "0",
        }
        if command is not None:
            data["type"] = 2
            data["data"] = {
                "id": str(self.snowflake()),
                "name": command,
                "type": 1,
                "options": [
                    {"name": k, "type": 5 if isinstance(v, bool) else 3, "value": v}
                    for k, v in (options or {}).items()
                ],
            }
        else:
            data["type"] = 3
            data["data"] = {"custom_id": custom_id, "component_type": 2}
            data["message"] = message or self.message(
                channel_id=channel_id, user_id=self.bot_id, content="?"
            )
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            data["guild_locale"] = "en-US"
            data["member"] = {
                "user": self.user(user_id),
                "roles": [str(r) for r in roles or []],
                "joined_at": TIMESTAMP,
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "0",
            }
        else:
            data["user"] = self.user(user_id)
        return data

    # ---- driving the client ---------------------------------------------------------------

    def dispatch(self, name: str, data: dict[str, Any]) -> None:
        """Send the event ``name`` to the connected client (or hold it for its resume)."""
        event = _Event(next(self._seq), name, data)
        self._log.append(event)
        if self._gateway is not None:
            self._gateway.queue.put_nowait(event)

    async def reconnect(self) -> None:
        """Ask the client to reconnect (op 7); it comes back with RESUME."""
        gateway = self._gateway
        if gateway is not None:
            await gateway.socket.send_str(json.dumps({"op": 7, "d": None}))

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the gateway connection with ``code`` (4000: the client resumes; 4004,
        a bad token, or 4014, a missing privileged intent: the client gives up)."""
        gateway = self._gateway
        if code in _FATAL_CLOSES:
            # A client may miss the code in the close frame (it is racy in aiohttp) and
            # try to RESUME; Discord answers that with the same close, and so does this.
            self._fatal = code
        if gateway is not None:
            await gateway.socket.close(code=code)

    def rate_limit(self, times: int = 1, *, retry_after: float = 0.2) -> None:
        """Answer the next ``times`` message sends with 429 and ``retry_after``."""
        self._limits.extend([retry_after] * times)

    def fail_followups(self, times: int = 1, *, status: int = 503) -> None:
        """Answer the next ``times`` interaction follow-ups with ``status``."""
        self._followup_failures.extend([status] * times)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_sent(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` messages the client sent, once there are that many."""
        await self.wait_for(lambda: len(self.sent) >= count, timeout_s)
        return self.sent[:count]

    def sent_to(self, channel_id: int) -> list[dict[str, Any]]:
        """The messages the client sent to one channel, in order."""
        return self._sent_by_channel.get(channel_id, [])

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        await self.wait_for(lambda: self._gateway is not None and self.identifies > 0, timeout_s)

    def _touch(self) -> None:
        self._changed.set()

    # ---- the gateway --------------------------------------------------------------------

    async def _gateway_handler(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        gateway = _Gateway(socket)
        writer = asyncio.get_running_loop().create_task(self._write(gateway))
        try:
            hello = {"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}}
            await socket.send_str(json.dumps(hello))
            async for frame in socket:
                if frame.type is not WSMsgType.TEXT:
                    break
                payload = json.loads(frame.data)
                await self._on_op(gateway, payload["op"], payload.get("d"))
        finally:
            writer.cancel()
            if self._gateway is gateway:
                self._gateway = None
            self._touch()
        return socket

    async def _on_op(self, gateway: _Gateway, op: int, data: Any) -> None:
        socket = gateway.socket
        if op == 1:
            await socket.send_str(json.dumps({"op": 11}))
        elif op == 2:
            self._fatal = None
            self.identifies += 1
            ready = {
                "v": 10,
                "user": self.user(self.bot_id, name=self.bot_name, bot=True),
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                "session_id": self._session,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.app_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            }
            await self._send(socket, "READY", ready)
            for guild in self.guilds.values():
                await self._send(socket, "GUILD_CREATE", guild)
            self._gateway = gateway
            for event in self._log:
                if not event.delivered:
                    gateway.queue.put_nowait(event)
            self._touch()
        elif op == 6:
            if self._fatal is not None:
                await socket.close(code=self._fatal)
                return
            self.resumes.append(dict(data))
            last = int(data.get("seq") or 0)
            for event in self._log:
                if event.seq > last:
                    gateway.queue.put_nowait(event)
            await socket.send_str(json.dumps({"op": 0, "t": "RESUMED", "s": None, "d": {}}))
            self._gateway = gateway
            self._touch()

    async def _send(self, socket: web.WebSocketResponse, name: str, data: Any) -> None:
        seq = next(self._seq)
        await socket.send_str(json.dumps({"op": 0, "t": name, "s": seq, "d": data}))

    async def _write(self, gateway: _Gateway) -> None:
        while True:
            event = await gateway.queue.get()
            if gateway.socket.closed:
                return
            await gateway.socket.send_str(
                json.dumps({"op": 0, "t": event.name, "s": event.seq, "d": event.data})
            )
            event.delivered = True

    # ---- REST -------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        parts = request.match_info["path"].strip("/").split("/")
        by_token = parts[0] in ("interactions", "webhooks")  # authorised by the URL's token
        if not by_token and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        method = request.method
        try:
            return await self._route(request, method, parts)
        finally:
            self._touch()

    async def _route(self, request: web.Request, method: str, parts: list[str]) -> web.Response:
        if parts == ["users", "@me"]:
            return _json(self.user(self.bot_id, name=self.bot_name, bot=True))
        if parts == ["oauth2", "applications", "@me"]:
            return _json(self._application())
        if parts[0] == "channels" and parts[2:] == ["typing"]:
            self.typing.append(int(parts[1]))
            return web.Response(status=204)
        if parts[0] == "channels" and parts[2:] == ["messages"] and method == "POST":
            if self._limits:
                retry_after = self._limits.pop(0)
                self.rate_limited.append(time.monotonic())
                return _json(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": retry_after,
                        "global": False,
                    },
                    status=429,
                    headers={"Via": "1.1 google", "Retry-After": str(retry_after)},
                )
            body = await self._body(request)
            if self.rest_latency_s:
                await asyncio.sleep(self.rest_latency_s)
            body["channel_id"] = int(parts[1])
            body["at"] = time.monotonic()
            self.sent.append(body)
            self._sent_by_channel.setdefault(body["channel_id"], []).append(body)
            return _json(self._sent_message(int(parts[1]), body))
        if parts[0] == "channels" and len(parts) == 7 and parts[4] == "reactions":
            self.reactions.append((int(parts[1]), int(parts[3]), parts[5]))
            return web.Response(status=204)
        if parts[0] == "applications" and parts[2:3] == ["guilds"] and parts[4:] == ["commands"]:
            commands = await request.json()
            self.commands[int(parts[3])] = commands
            return _json(
                [
                    {
                        **c,
                        "id": str(self.snowflake()),
                        "application_id": str(self.app_id),
                        "version": "1",
                        "default_member_permissions": None,
                    }
                    for c in commands
                ]
            )
        if parts[0] == "interactions" and parts[3:] == ["callback"]:
            body = await self._body(request)
            body["interaction_id"] = int(parts[1])
            self.callbacks.append(body)
            return _json(
                {
                    "interaction": {"id": parts[1], "type": 2},
                    "resource": {"type": body.get("type", 4)},
                }
            )
        if parts[0] == "webhooks" and len(parts) >= 3:
            if self._followup_failures:
                status = self._followup_failures.pop(0)
                return _json({"message": "Service Unavailable", "code": 0}, status=status)
            body = await self._body(request)
            body["token"] = parts[2]
            self.followups.append(body)
            return _json(self._sent_message(0, body))
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body = json.loads(str(form.get("payload_json") or "{}"))
            files = []
            for key, value in form.items():
                if key.startswith("files[") and isinstance(value, web.FileField):
                    files.append({"filename": value.filename, "data": value.file.read()})
            body["files"] = files
            return dict(body)
        if not request.can_read_body:
            return {}
        return dict(await request.json())

    def _sent_message(self, channel_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": body.get("content") or "",
            "author": self.user(self.bot_id, name=self.bot_name, bot=True),
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "flags": 0,
        }

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(self.app_id),
            "name": self.bot_name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.user(1, name="owner"),
            "flags": 0,
            "team": None,
            "summary": "",
            "rpc_origins": [],
            "tags": [],
            "interactions_endpoint_url": None,
            "redirect_uris": [],
        }
