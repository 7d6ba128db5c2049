"""The ``POST /{agent_id}/message`` request: form data or JSON, with an optional file,
and where an uploaded file is kept."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from carrier.settings import data_dir
from carrier.types import Attachment

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    from carrier_plugin_http.settings import HttpSettings

__all__ = [
    "BadRequestError",
    "MessageForm",
    "MessageIn",
    "discard_uploads",
    "media_type",
    "read_message",
    "store_upload",
    "upload_path",
]

_ID = r"^[A-Za-z0-9._:@\-]+$"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/yaml")
_MEDIA_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(;[\x20-\x7e]*)?", re.ASCII)


class BadRequestError(Exception):
    """The request is malformed; ``status`` and a sentence for the JSON error body."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class MessageIn(BaseModel):
    """A message as the ElizaOS direct client sends it (form fields or a JSON object).

    Other fields are ignored: a client cannot set the sender's role or the stored
    message's metadata.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    text: StrictStr = Field(min_length=1, max_length=100_000, description="The message.")
    room_id: StrictStr | None = Field(
        default=None,
        alias="roomId",
        max_length=200,
        pattern=_ID,
        description="Room id; default: the sender's own room with the agent.",
    )
    room_type: Literal["direct", "group"] = Field(
        default="direct",
        alias="roomType",
        description="A new room's kind: 'direct' (one user and the agent) or 'group'.",
    )
    user_id: StrictStr | None = Field(
        default=None,
        alias="userId",
        max_length=200,
        pattern=_ID,
        description="Sender id; default 'user'.",
    )
    user_name: StrictStr | None = Field(
        default=None, alias="userName", max_length=200, description="Sender's display name."
    )
    name: StrictStr | None = Field(
        default=None, max_length=200, description="Display name (ElizaOS clients send both)."
    )

    @field_validator("room_id", "user_id")
    @classmethod
    def _not_a_path_segment(cls, value: str | None) -> str | None:
        # '.' and '..' would name another path in the URLs that read the room back.
        if value in (".", ".."):
            raise ValueError(f"{value!r} is not an id; use letters, digits or . _ : @ -")
        return value


class MessageForm(MessageIn):
    """The multipart form of :class:`MessageIn`, with an optional ``file``."""

    file: bytes | None = Field(default=None, description="A file stored as an attachment.")


async def read_message(
    request: Request, settings: HttpSettings
) -> tuple[MessageIn, UploadFile | None]:
    """Parse the request body by its content type.

    Raises:
        BadRequestError: Not form data or a JSON object, a missing or empty ``text``, a
            field of the wrong type, or more than one file.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: UploadFile | None = None
    fields: dict[str, Any]
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        from starlette.datastructures import UploadFile

        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as exc:  # python-multipart's and starlette's parse errors
            raise BadRequestError(f"The form data could not be read: {exc}.") from None
        fields = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    await form.close()
                    raise BadRequestError(
                        f"Unexpected file field {key!r}; send the file as 'file'."
                    )
                upload = value
            elif key == "file" and value == "":
                continue  # an empty file input
            else:
                fields[key] = value
    elif content_type in ("application/json", "") or content_type.endswith("+json"):
        body = await request.body()
        try:
            fields = json.loads(body) if body else {}
        except (ValueError, UnicodeDecodeError):
            raise BadRequestError("The body is not valid JSON.") from None
        if not isinstance(fields, dict):
            raise BadRequestError('The JSON body must be an object such as {"text": "hello"}.')
    else:
        raise BadRequestError(
            f"Unsupported content type {content_type!r}; send multipart/form-data, "
            f"application/x-www-form-urlencoded or application/json.",
            status=415,
        )
    try:
        return _validate(fields, upload, settings), upload
    except BadRequestError:
        if upload is not None:
            await upload.close()
        raise


def _validate(
    fields: dict[str, Any], upload: UploadFile | None, settings: HttpSettings
) -> MessageIn:
    if not fields.get("text"):
        raise BadRequestError("The field 'text' is required and must not be empty.")
    try:
        message = MessageIn.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise BadRequestError(f"Invalid message: {problems}.") from None
    if upload is not None and upload.size is not None and upload.size > settings.max_upload_bytes:
        raise BadRequestError(
            f"The file is larger than this server accepts ({settings.max_upload_bytes} bytes).",
            status=413,
        )
    return message


async def store_upload(
    upload: UploadFile, settings: HttpSettings, *, url: Callable[[str], str]
) -> Attachment:
    """Write an uploaded file to the upload folder and describe it as an attachment.

    Small text files are also kept inline (``Attachment.text``) so the model reads them.

    Args:
        upload: The file of the request.
        settings: The upload folder and the inline-text limit.
        url: Makes the attachment's URL (where the server serves it) from its id.
    """
    original = upload.filename or "upload"
    attachment_id = str(uuid.uuid4())
    folder = _upload_folder(settings)
    path = folder / _file_name(attachment_id, original)
    data = await upload.read()
    await upload.close()

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    await asyncio.to_thread(write)
    content_type = upload.content_type or "application/octet-stream"
    text = None
    if content_type.startswith(_TEXT_TYPES) and len(data) <= settings.attachment_text_bytes:
        text = data.decode("utf-8", errors="replace")
    return Attachment(
        id=attachment_id,
        url=url(attachment_id),
        title=original,
        source="http",
        content_type=content_type,
        text=text,
        size=len(data),
    )


async def discard_uploads(attachments: list[Attachment], settings: HttpSettings) -> None:
    """Delete the files of a message that was refused, so none stays behind unlinked."""

    def delete() -> None:
        for attachment in attachments:
            path = upload_path(attachment, settings)
            if path is not None:
                path.unlink(missing_ok=True)

    await asyncio.to_thread(delete)


def upload_path(attachment: Attachment, settings: HttpSettings) -> Path | None:
    """Where :func:`store_upload` wrote this attachment's file, or ``None`` if it did not.

    The name is made from the attachment's id, which must be a UUID in its canonical
    form, and its title reduced to ``[A-Za-z0-9._-]``, so the path is always a plain
    file name inside the upload folder, whatever a stored record says.
    """
    if attachment.source != "http":
        return None
    try:
        canonical = str(uuid.UUID(attachment.id))
    except ValueError:
        return None
    if canonical != attachment.id:
        return None
    return _upload_folder(settings) / _file_name(canonical, attachment.title or "upload")


def media_type(content_type: str | None) -> str:
    """The stored content type if it is well-formed, else ``application/octet-stream``."""
    if content_type and _MEDIA_TYPE.fullmatch(content_type):
        return content_type
    return "application/octet-stream"


def _upload_folder(settings: HttpSettings) -> Path:
    return settings.upload_dir or data_dir() / "uploads"


def _file_name(attachment_id: str, original: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(original).name)[-100:] or "upload"
    return f"{attachment_id}-{safe}"
