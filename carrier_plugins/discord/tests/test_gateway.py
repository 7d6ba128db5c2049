"""The connection itself, over sockets: IDENTIFY and READY, the REST call that answers,
a 429 with ``retry_after`` honoured, a gateway reconnect with RESUME (the events missed
meanwhile replayed, none answered twice), a bad token, a clean shutdown."""

from __future__ import annotations

import asyncio
import time

from carrier_plugin_discord.testing import FakeDiscord

from carrier.testing import FakeModel

from .conftest import ALICE, BOB, DM_ALICE, DM_BOB, GUILD, TEXT, ServeFactory, wait_until


async def test_identify_ready_answer_and_a_429_honoured(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        assert fake.identifies == 1
        fake.rate_limit(1, retry_after=0.3)
        started = time.monotonic()
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(
                channel_id=TEXT, guild_id=GUILD, user_id=ALICE, content="hi", mentions_bot=True
            ),
        )
        (sent,) = await fake.wait_sent(1)
        assert served.health.state == "running"
    assert len(fake.rate_limited) == 1
    # the answer came after Discord's retry_after, not before
    assert sent["at"] - fake.rate_limited[0] >= 0.29
    assert sent["at"] - started >= 0.29


async def test_a_reconnect_resumes_and_replays_missed_events_once(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    model = FakeModel(default_text="answer")
    async with serve(model=model) as served:
        first = fake.message(channel_id=DM_ALICE, user_id=ALICE, content="one")
        fake.dispatch("MESSAGE_CREATE", first)
        await fake.wait_sent(1)
        await fake.reconnect()
        # sent while the client reconnects: delivered after RESUME
        fake.dispatch("MESSAGE_CREATE", fake.message(channel_id=DM_BOB, user_id=BOB, content="two"))
        await fake.wait_for(lambda: len(fake.resumes) == 1)
        await fake.wait_sent(2)
        # Discord may replay an event already handled: it is not answered again
        fake.dispatch("MESSAGE_CREATE", first)
        await asyncio.sleep(0.3)
        assert served.health.state == "running"
    assert fake.identifies == 1
    (resume,) = fake.resumes
    assert resume["session_id"] == "fake-session"
    assert resume["token"] == fake.token
    assert [s["channel_id"] for s in fake.sent] == [DM_ALICE, DM_BOB]
    assert len(model.requests) == 2


async def test_a_bad_token_is_reported_and_retried(serve: ServeFactory, fake: FakeDiscord) -> None:
    async with serve(token="wrong", wait_ready=False) as served:
        await wait_until(lambda: served.health.state == "restarting")
        assert "CARRIER_DISCORD_TOKEN" in served.health.detail
        assert "wrong" not in served.health.detail
    assert fake.identifies == 0


async def test_stop_finishes_the_turn_in_flight_then_closes(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    class SlowModel(FakeModel):
        async def generate(self, request):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.3)
            return await super().generate(request)

    async with serve(model=SlowModel(default_text="finished")):
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="slow one")
        )
        await fake.wait_for(lambda: DM_ALICE in fake.typing)
    assert [s["content"] for s in fake.sent] == ["finished"]
    await fake.wait_for(lambda: fake._gateway is None)


async def test_a_missing_privileged_intent_is_explained_and_retried(
    serve: ServeFactory, fake: FakeDiscord
) -> None:
    async with serve() as served:
        await fake.close_gateway(4014)
        await wait_until(lambda: served.health.restarts == 1)
        assert "Message Content intent" in served.health.detail
        await wait_until(lambda: served.health.state == "running")
        fake.dispatch(
            "MESSAGE_CREATE", fake.message(channel_id=DM_ALICE, user_id=ALICE, content="back?")
        )
        await fake.wait_sent(1)
    assert fake.identifies == 2
