"""Uploaded files come back from the URL their attachment records, to the room's users only.

Files are sent the way the ElizaOS direct client sends them (form data with ``file``),
over real HTTP; the URL is read from the memories endpoint, as a client would.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from carrier.character import Character
from carrier.types import Attachment, Content, Memory

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not valid UTF-8


async def upload(
    client: httpx.AsyncClient,
    agent: str,
    file: tuple[str, bytes, str],
    *,
    path: str = "message",
    **fields: str,
) -> dict[str, Any]:
    """Send a message with ``file``; answer the stored message that carries it."""
    room = fields.setdefault("roomId", "files")
    sent = await client.post(
        f"/{agent}/{path}", data={"text": "here is a file", **fields}, files={"file": file}
    )
    assert sent.status_code == 200, sent.text
    params = {"userId": fields["userId"]} if "userId" in fields else {}
    page = await client.get(f"/agents/{agent}/rooms/{room}/memories", params=params)
    assert page.status_code == 200, page.text
    (message,) = [m for m in page.json()["memories"] if m["content"].get("attachments")]
    return message  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "file", "content_type", "disposition"),
    [
        (
            "message",
            ("notes.txt", b"the secret word is plover", "text/plain"),
            "text/plain; charset=utf-8",
            'inline; filename="notes.txt"',
        ),
        ("message", ("pixel.png", PNG, "image/png"), "image/png", 'inline; filename="pixel.png"'),
        (
            "message/stream",
            ("page.html", b"<script>alert(1)</script>", "text/html"),
            "text/html; charset=utf-8",
            'attachment; filename="page.html"',
        ),
        (
            "message",
            ("r\u00e9sum\u00e9 (1).bin", b"\x00\x01\x02", "application/octet-stream"),
            "application/octet-stream",
            "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%281%29.bin",
        ),
    ],
    ids=["text", "binary image", "html via stream", "odd name"],
)
async def test_an_uploaded_file_downloads_from_its_attachment_url(
    serve_agents, path, file, content_type, disposition
) -> None:
    async with serve_agents() as served, served.client() as client:
        agent_id = served.runtimes[0].agent_id
        message = await upload(client, agent_id, file, path=path, userId="alice")
        (attachment,) = message["content"]["attachments"]
        assert attachment["title"] == file[0]
        assert attachment["url"].startswith(f"/agents/{agent_id}/rooms/files/memories/")
        response = await client.get(attachment["url"], params={"userId": "alice"})
        assert response.status_code == 200, response.text
        assert response.content == file[1]
        assert response.headers["content-type"] == content_type
        assert response.headers["content-disposition"] == disposition
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_only_the_rooms_users_can_download_its_files(serve_agents, settings_with) -> None:
    settings = settings_with(user_tokens={"tok-a": "alice", "tok-b": "bob"})
    agents = [Character(name="Nova"), Character(name="Ada")]
    async with (
        serve_agents(agents, settings=settings) as served,
        served.client("tok-a") as alice,
        served.client("tok-b") as bob,
        served.client() as anonymous,
    ):
        message = await upload(alice, "Nova", ("a.txt", b"alice's", "text/plain"), roomId="r-a")
        url = message["content"]["attachments"][0]["url"]
        assert (await alice.get(url)).content == b"alice's"

        unauthenticated = await anonymous.get(url)
        assert unauthenticated.status_code == 401
        assert b"alice's" not in unauthenticated.content
        denied = await bob.get(url)
        assert denied.status_code == 403
        assert "bob" in denied.json()["error"]
        assert (await bob.get(url, params={"userId": "alice"})).status_code == 403

        # bob's own room does not hold alice's message
        await upload(bob, "Nova", ("b.txt", b"bob's", "text/plain"), roomId="r-b")
        through_own_room = await bob.get(url.replace("/rooms/r-a/", "/rooms/r-b/"))
        assert through_own_room.status_code == 404
        assert b"alice's" not in through_own_room.content

        nova, ada = served.runtimes
        unknown = {
            "another agent": url.replace(f"/agents/{nova.agent_id}/", f"/agents/{ada.agent_id}/"),
            "no such agent": url.replace(f"/agents/{nova.agent_id}/", "/agents/nobody/"),
            "no such message": url.replace(message["id"], str(uuid.uuid4())),
            "no such attachment": url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}",
        }
        for what, other in unknown.items():
            missing = await alice.get(other)
            assert missing.status_code == 404, what
            assert "error" in missing.json(), what


async def test_a_file_outside_the_upload_folder_is_never_served(
    serve_agents, tmp_path: Path
) -> None:
    secret = b"do not serve me"
    (tmp_path / "secret.txt").write_bytes(secret)
    file_id = str(uuid.uuid4())
    async with serve_agents() as served, served.client() as client:
        agent_id = served.runtimes[0].agent_id
        message = await upload(client, agent_id, ("a.txt", b"fine", "text/plain"), userId="eve")
        url = message["content"]["attachments"][0]["url"]
        folder = url.rsplit("/", 1)[0]
        requested = [
            f"{folder}/..%2F..%2Fsecret.txt",
            f"{folder}/%2E%2E%2F%2E%2E%2Fsecret.txt",
            f"{folder}/..%5C..%5Csecret.txt",
            f"{folder}/{file_id}-..%2F..%2Fsecret.txt",
        ]
        # records another client might have stored in the same room
        hostile = Memory(
            agent_id=agent_id,
            entity_id="eve",
            room_id="files",
            content=Content(
                text="look",
                attachments=[
                    Attachment(id="../secret.txt", title="secret.txt", source="http"),
                    Attachment(id="../../secret.txt", source="http"),
                    Attachment(id=file_id, title="../secret.txt", source="http"),
                    Attachment(id="..", title="secret.txt", source="http"),
                    Attachment(id=str(uuid.uuid4()), url=(tmp_path / "secret.txt").as_uri()),
                ],
            ),
        )
        await served.store.create_memory(hostile)
        base = f"/agents/{agent_id}/rooms/files/memories/{hostile.id}/attachments/"
        requested += [base + a.id.replace("/", "%2F") for a in hostile.content.attachments]
        for path in requested:
            response = await client.get(path, params={"userId": "eve"})
            assert response.status_code == 404, path
            assert secret not in response.content, path
        assert (await client.get(url, params={"userId": "eve"})).content == b"fine"
