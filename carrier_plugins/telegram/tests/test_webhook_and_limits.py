"""Webhooks instead of long polling, and the optional proactive rate limiter."""

from __future__ import annotations

import socket

import pytest
from carrier_plugin_telegram.settings import TelegramSettings
from carrier_plugin_telegram.testing import FakeTelegram
from pydantic import ValidationError

from .conftest import ServeFactory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_webhook_is_registered_with_its_secret_and_answers_each_user_in_their_chat(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    settings = {"webhook_url": url, "webhook_port": port, "webhook_secret": "s3cret-Token_1"}
    async with serve(**settings) as served:
        assert "webhook" in str(served.health.detail)
        assert fake.webhook is not None
        assert fake.webhook["url"] == url
        assert fake.webhook["secret_token"] == "s3cret-Token_1"
        assert fake.webhook["allowed_updates"] == ["message"]
        # Telegram's POST carries the secret; anything else is refused, unanswered
        assert await fake.post_update(fake.private_message(user_id=7, text="hi")) == 200
        forged = fake.private_message(user_id=8, text="forged")
        assert await fake.post_update(forged, secret="wrong") == 403
        assert await fake.post_update(fake.private_message(user_id=8, text="hello")) == 200
        sent = await fake.wait_sent(2)
    assert sorted(int(s["chat_id"]) for s in sent) == [7, 8]
    assert len(fake.sent) == 2
    assert fake.calls_to("getUpdates") == []  # no long polling alongside the webhook


async def test_the_limiter_spreads_a_burst_over_the_configured_rate(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    users = range(20, 30)
    async with serve(rate_limit="true", rate_limit_per_s=5, typing_interval_s=60):
        for user in users:
            fake.queue_message(fake.private_message(user_id=user, text="hi"))
        await fake.wait_sent(len(users), timeout_s=15)
    times = sorted(c.at for c in fake.calls_to("sendMessage"))
    # 10 answers and 10 typing indicators at 5 requests a second: the first 5 at once,
    # then one every 0.2 s
    assert times[-1] - times[0] >= 1.5
    assert sorted(int(s["chat_id"]) for s in fake.sent) == list(users)


async def test_without_the_limiter_the_same_burst_goes_out_at_once(
    serve: ServeFactory, fake: FakeTelegram
) -> None:
    users = range(20, 30)
    async with serve(typing_interval_s=60):
        for user in users:
            fake.queue_message(fake.private_message(user_id=user, text="hi"))
        await fake.wait_sent(len(users), timeout_s=15)
    times = sorted(c.at for c in fake.calls_to("sendMessage"))
    assert times[-1] - times[0] < 1.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("webhook_secret", "has spaces", "letters, digits"),
        ("webhook_url", "telegram.example.com/hook", "the URL Telegram posts updates to"),
    ],
)
def test_bad_webhook_settings_are_refused_with_the_rule(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TelegramSettings.model_validate({field: value})
