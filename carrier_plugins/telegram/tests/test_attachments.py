"""Photos, documents and voice notes reach the model as attachments."""

from __future__ import annotations

import carrier_plugin_bootstrap.plugin
from carrier_plugin_telegram.testing import FakeTelegram

from carrier.host import PluginHost
from carrier.testing import FunctionModel
from carrier.types import ModelRequest

from .conftest import ServeFactory


def _prompt(request: ModelRequest) -> str:
    return "\n".join([request.system or "", *(m.content for m in request.messages)])


async def test_a_document_and_a_photo_reach_the_model(
    host: PluginHost, serve: ServeFactory, fake: FakeTelegram
) -> None:
    host.register(carrier_plugin_bootstrap.plugin, name="bootstrap")  # its attachments section
    prompts: list[str] = []

    def answer(request: ModelRequest) -> str:
        prompts.append(_prompt(request))
        return "got it"

    recipe = fake.add_file(b"Secret recipe: 42 cloves of garlic.", file_path="documents/r.txt")
    photo = fake.add_file(b"\xff\xd8jpeg", file_path="photos/p.jpg")
    binary = fake.add_file(b"%PDF-1.7", file_path="documents/x.pdf")
    async with serve(model=FunctionModel(answer)) as served:
        document = {**recipe, "file_name": "recipe.txt", "mime_type": "text/plain"}
        fake.queue_message(fake.private_message(user_id=7, document=document, caption="read this"))
        sizes = [{**photo, "width": 90, "height": 90}, {**photo, "width": 800, "height": 800}]
        fake.queue_message(fake.private_message(user_id=7, photo=sizes))
        pdf = {**binary, "file_name": "report.pdf", "mime_type": "application/pdf"}
        voice = {**photo, "duration": 3, "mime_type": "audio/ogg"}
        fake.queue_message(fake.private_message(user_id=7, document=pdf, voice=voice))
        await fake.wait_sent(3)
        stored = await served.runtime.store.get_memories(
            agent_id=served.runtime.agent_id, room_id=f"telegram:{fake.bot_id}:7", limit=20
        )
    document_prompt = next(p for p in prompts if "recipe.txt" in p)
    assert "Secret recipe: 42 cloves of garlic." in document_prompt
    assert "read this" in document_prompt
    assert any("photo (image/jpeg)" in p for p in prompts)
    pdf_prompt = next(p for p in prompts if "report.pdf" in p)
    assert "%PDF" not in pdf_prompt  # only text files are inlined
    assert "voice (audio/ogg)" in pdf_prompt
    kinds = {a.title: a for m in stored for a in m.content.attachments}
    assert set(kinds) == {"recipe.txt", "photo", "report.pdf", "voice"}
    assert all(a.url is None for a in kinds.values())  # file URLs would carry the token
    assert not any(fake.token in p for p in prompts)
