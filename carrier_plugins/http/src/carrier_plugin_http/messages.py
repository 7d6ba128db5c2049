"""The ``POST /{agent_id}/message`` request: form data or JSON, with an optional file."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from carrier.settings import data_dir
from carrier.types import Attachment

if TYPE_CHECKING:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    from carrier_plugin_http.settings import HttpSettings

__all__ = ["BadRequestError", "MessageForm", "MessageIn", "read_message", "store_upload"]

_ID = r"^[A-Za-z0-9._:@\-]+$"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/yaml")


class BadRequestError(Exception):
    """The request is malformed; ``status`` and a sentence for the JSON error body."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class MessageIn(BaseModel):
    """A message as the ElizaOS direct client sends it (form fields or a JSON object)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    text: StrictStr = Field(min_length=1, max_length=100_000, description="The message.")
    room_id: StrictStr | None = Field(
        default=None,
        alias="roomId",
        max_length=200,
        pattern=_ID,
        description="Room id; default 'default-room-{agent_id}'.",
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


async def store_upload(upload: UploadFile, settings: HttpSettings) -> Attachment:
    """Write an uploaded file to the upload folder and describe it as an attachment.

    Small text files are also kept inline (``Attachment.text``) so the model reads them.
    """
    folder = settings.upload_dir or data_dir() / "uploads"
    original = upload.filename or "upload"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(original).name)[-100:] or "upload"
    attachment_id = str(uuid.uuid4())
    path = folder / f"{attachment_id}-{safe}"
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
        url=path.as_uri(),
        title=original,
        source="http",
        content_type=content_type,
        text=text,
        size=len(data),
    )
