"""``FakeTelegram``: a fake Telegram Bot API server on 127.0.0.1, for tests.

A real HTTP server (asyncio streams and ``h11``, which python-telegram-bot's httpx already
depends on) that the real library talks to: point a client at it with
``CARRIER_TELEGRAM_BASE_URL=fake.url``. It implements what a bot client calls —
``getMe``, ``setWebhook``, ``deleteWebhook``, ``getUpdates`` (long polling with ``offset``),
``sendMessage``, ``sendChatAction``, ``getChatMember``, ``getChatAdministrators``,
``getFile`` and file downloads — records every call, and lets a test queue updates,
make the next calls fail (429 with ``retry_after``, 409 Conflict, 400, ...) and wait for
what the bot sent::

    async with FakeTelegram() as fake:
        fake.queue_message(fake.private_message(user_id=7, text="hello"))
        (sent,) = await fake.wait_sent(1)
        assert sent["chat_id"] == 7

Two concurrent ``getUpdates`` calls for one token get ``409 Conflict`` on the newer
one, as on Telegram, and so does ``getUpdates`` while a webhook is set. With a webhook
set, :meth:`FakeTelegram.post_update` delivers an update to it the way Telegram does
(a POST with the secret token header).
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
from urllib.parse import parse_qsl, unquote

import h11

__all__ = ["ApiCall", "FakeTelegram"]

#: The token the fake accepts unless told otherwise (bot id 123456).
DEFAULT_TOKEN = "123456:TEST-token"

_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the bot made: the method, its parameters, when (``time.monotonic``)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass(slots=True)
class _Failure:
    status: int
    description: str
    retry_after: float | None
    times: int


@dataclass(slots=True)
class _File:
    content: bytes
    file_path: str


@dataclass
class FakeTelegram:
    """The fake server; ``async with FakeTelegram() as fake`` starts and stops it.

    Args:
        token: The one bot token it accepts (others get 401).
        username: The bot's username (``getMe``).
        first_name: The bot's name.
    """

    token: str = DEFAULT_TOKEN
    username: str = "carrier_test_bot"
    first_name: str = "Carrier Test Bot"
    calls: list[ApiCall] = field(default_factory=list)
    #: ``chat id -> user ids`` of each group's administrators (the first is the creator).
    administrators: dict[int, list[int]] = field(default_factory=dict)
    #: How many getUpdates calls ended in 409 Conflict (two pollers at once).
    conflicts: int = 0

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._changed = asyncio.Condition()
        self._failures: dict[str, list[_Failure]] = {}
        self._files: dict[str, _File] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._poll_generation = 0
        self._sent: list[ApiCall] = []
        #: The ``setWebhook`` parameters in force (``None``: long polling).
        self.webhook: dict[str, Any] | None = None
        self._sent_by_chat: dict[int, list[ApiCall]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and end open connections (held long polls included)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=5)

    @property
    def url(self) -> str:
        """The base URL (``CARRIER_TELEGRAM_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    # ---- what a test arranges -------------------------------------------------------

    def user(self, user_id: int, *, first_name: str | None = None, **extra: Any) -> dict[str, Any]:
        """A ``User`` object (remembered for ``getChatMember``)."""
        found = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        found.update(extra)
        self._users[user_id] = found
        return found

    def private_message(self, *, user_id: int, text: str = "", **extra: Any) -> dict[str, Any]:
        """A ``Message`` in the private chat with ``user_id``."""
        user = self._users.get(user_id) or self.user(user_id)
        chat = {"id": user_id, "type": "private", "first_name": user["first_name"]}
        return self._message(chat, user, text, extra)

    def group_message(
        self,
        *,
        chat_id: int,
        user_id: int,
        text: str = "",
        title: str = "Group",
        forum: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """A ``Message`` in a supergroup (``forum=True``: one with topics)."""
        user = self._users.get(user_id) or self.user(user_id)
        chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            chat["is_forum"] = True
        return self._message(chat, user, text, extra)

    def mention(self, text: str = "") -> tuple[str, list[dict[str, Any]]]:
        """``("@bot text", entities)``: text that mentions the bot, with its entity."""
        handle = f"@{self.username}"
        entity = {"type": "mention", "offset": 0, "length": len(handle)}
        return f"{handle} {text}".rstrip(), [entity]

    def bot_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` as sent by another bot (``from.is_bot``)."""
        sender = dict(message["from"], is_bot=True)
        return dict(message, **{"from": sender})

    def add_file(self, content: bytes, *, file_path: str) -> dict[str, Any]:
        """Serve ``content`` through ``getFile``; the ``file_id``/``file_unique_id`` pair."""
        file_id = f"file-{len(self._files) + 1}"
        self._files[file_id] = _File(content, file_path)
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(content)}

    def queue_message(self, message: dict[str, Any], *, update_id: int | None = None) -> int:
        """Queue an update carrying ``message``; its ``update_id``."""
        return self.queue_update({"message": message}, update_id=update_id)

    def queue_update(self, update: dict[str, Any], *, update_id: int | None = None) -> int:
        """Queue a raw update for ``getUpdates``; its ``update_id``."""
        number = update_id if update_id is not None else next(self._update_ids)
        self._updates.append({"update_id": number, **update})
        self._notify()
        return number

    async def post_update(self, message: dict[str, Any], *, secret: str | None = None) -> int:
        """POST an update carrying ``message`` to the webhook the bot set, with the
        secret it registered (or ``secret``, to test a wrong one); the HTTP status."""
        import httpx

        if self.webhook is None:
            raise RuntimeError("No webhook is set (the bot did not call setWebhook).")
        update = {"update_id": next(self._update_ids), "message": message}
        token = secret if secret is not None else self.webhook.get("secret_token")
        headers = {"X-Telegram-Bot-Api-Secret-Token": str(token)} if token else {}
        async with httpx.AsyncClient() as client:
            response = await client.post(str(self.webhook["url"]), json=update, headers=headers)
        return response.status_code

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (429: flood
        control, give ``retry_after``; 409: conflict; 400: bad request; ...)."""
        default = {
            429: "Too Many Requests: retry after {}",
            409: "Conflict: terminated by other getUpdates request; make sure that only "
            "one bot instance is running",
        }.get(status, f"Error {status}")
        text = description or default.format(retry_after)
        self._failures.setdefault(method, []).append(_Failure(status, text, retry_after, times))

    # ---- what a test reads ----------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The parameters of every successful ``sendMessage``, in order."""
        return [c.params for c in self._sent]

    def sent_to(self, chat_id: int) -> list[ApiCall]:
        """The successful ``sendMessage`` calls to one chat, in order (``.at`` is when
        each arrived, on the ``time.monotonic()`` clock)."""
        return self._sent_by_chat.get(chat_id, [])

    async def wait_sent(self, count: int, *, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were sent; all sent so far."""
        await self.wait_for(lambda: len(self.sent) >= count, timeout_s=timeout_s)
        return self.sent

    async def wait_for(self, predicate: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds after some call; ``TimeoutError`` if it
        does not within ``timeout_s`` seconds."""
        async with asyncio.timeout(timeout_s):
            async with self._changed:
                await self._changed.wait_for(predicate)

    # ---- the server -----------------------------------------------------------------

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _message(
        self, chat: dict[str, Any], user: dict[str, Any], text: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        self._chats[chat["id"]] = chat
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        if text:
            message["text"] = text
        message.update(extra)
        return message

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(connection, reader)
                if request is None:
                    break
                status, payload = await self._dispatch(request, body)
                headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
                writer.write(connection.send(h11.Response(status_code=status, headers=headers)))
                writer.write(connection.send(h11.Data(data=payload)))
                writer.write(connection.send(h11.EndOfMessage()))
                await writer.drain()
                if connection.our_state is h11.MUST_CLOSE:
                    break
                connection.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # aclose(): the connection ends with the server
        finally:
            self._connections.discard(task)
            writer.close()

    async def _dispatch(self, request: h11.Request, body: bytes) -> tuple[int, bytes]:
        path = unquote(request.target.decode().split("?", 1)[0])
        if path.startswith("/file/bot"):
            return self._download(path[len("/file/bot") :])
        if not path.startswith("/bot"):
            return _error(404, "Not Found")
        token, _, method = path[len("/bot") :].partition("/")
        if token != self.token:
            return _error(401, "Unauthorized")
        params = _params(request, body)
        call = ApiCall(method, params, time.monotonic())
        self.calls.append(call)
        try:
            failure = self._failure(method)
            if failure is not None:
                return failure
            if method == "getUpdates":
                if self.webhook is not None:
                    return _error(
                        409, "Conflict: can't use getUpdates method while webhook is active"
                    )
                return await self._get_updates(params)
            status, payload = self._answer(method, params)
            if method == "sendMessage" and status == 200:
                self._sent.append(call)
                self._sent_by_chat.setdefault(int(params["chat_id"]), []).append(call)
            return status, payload
        finally:
            self._notify()

    def _failure(self, method: str) -> tuple[int, bytes] | None:
        queued = self._failures.get(method)
        if not queued:
            return None
        failure = queued[0]
        failure.times -= 1
        if failure.times <= 0:
            queued.pop(0)
        parameters = {"retry_after": failure.retry_after} if failure.retry_after else None
        return _error(failure.status, failure.description, parameters)

    async def _get_updates(self, params: dict[str, Any]) -> tuple[int, bytes]:
        # As on Telegram, a new getUpdates ends the one still waiting with 409 Conflict.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            try:
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(
                        lambda: bool(self._updates) or self._poll_generation != generation
                    )
            except TimeoutError:
                pass
        if self._poll_generation != generation:
            self.conflicts += 1
            return _error(409, "Conflict: terminated by other getUpdates request")
        return _ok(self._updates[:limit])

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        if method == "getMe":
            return _ok(self._me())
        if method == "setWebhook":
            self.webhook = dict(params)
            return _ok(True)
        if method == "deleteWebhook":
            self.webhook = None
            return _ok(True)
        if method in {"sendChatAction", "setMessageReaction", "close"}:
            return _ok(True)
        if method == "sendMessage":
            return self._send_message(params)
        if method == "getChatAdministrators":
            chat_id = int(params["chat_id"])
            admins = self.administrators.get(chat_id, [])
            return _ok([self._member(uid, creator=i == 0) for i, uid in enumerate(admins)])
        if method == "getChatMember":
            chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
            admins = self.administrators.get(chat_id, [])
            if user_id in admins:
                return _ok(self._member(user_id, creator=admins[0] == user_id))
            return _ok({"status": "member", "user": self._user_object(user_id)})
        if method == "getFile":
            found = self._files.get(str(params.get("file_id")))
            if found is None:
                return _error(400, "Bad Request: invalid file_id")
            return _ok(
                {
                    "file_id": params["file_id"],
                    "file_unique_id": f"u{params['file_id']}",
                    "file_size": len(found.content),
                    "file_path": found.file_path,
                }
            )
        return _error(404, f"Not Found: method {method} is not implemented by FakeTelegram")

    def _send_message(self, params: dict[str, Any]) -> tuple[int, bytes]:
        text = str(params.get("text", ""))
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        params["_ok"] = True
        chat_id = int(params["chat_id"])
        chat = self._chats.get(chat_id) or {"id": chat_id, "type": "private"}
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self._me(),
            "text": text,
        }
        if "message_thread_id" in params:
            message["message_thread_id"] = int(params["message_thread_id"])
        return _ok(message)

    def _download(self, rest: str) -> tuple[int, bytes]:
        token, _, file_path = rest.partition("/")
        if token != self.token:
            return _error(401, "Unauthorized")
        for found in self._files.values():
            if found.file_path == file_path:
                return 200, found.content
        return _error(404, "Not Found")

    def _me(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _user_object(self, user_id: int) -> dict[str, Any]:
        return self._users.get(user_id) or self.user(user_id)

    def _member(self, user_id: int, *, creator: bool) -> dict[str, Any]:
        user = self._user_object(user_id)
        if creator:
            return {"status": "creator", "user": user, "is_anonymous": False}
        rights = [
            "can_be_edited",
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "is_anonymous",
        ]
        return {"status": "administrator", "user": user, **dict.fromkeys(rights, False)}


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            connection.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


def _params(request: h11.Request, body: bytes) -> dict[str, Any]:
    """The request's parameters: form-encoded or JSON (values JSON-decoded when they are
    objects, as python-telegram-bot encodes them)."""
    content_type = dict(request.headers).get(b"content-type", b"").decode()
    if "json" in content_type:
        loaded = json.loads(body or b"{}")
        return dict(loaded) if isinstance(loaded, dict) else {}
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if value[:1] in "{[":
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params


def _ok(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"ok": True, "result": result}).encode()


def _error(
    status: int, description: str, parameters: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, json.dumps(body).encode()
