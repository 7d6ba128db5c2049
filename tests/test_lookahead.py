"""The next turn's prefix (``carrier.lookahead``): after each answer, the large model
prefills the room's next stable prefix — the one the next message's request begins
with, drops of the history window included — and nothing of another room."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from carrier.builtin.memory_store import InMemoryStore
from carrier.character import Character
from carrier.host import PluginHost
from carrier.protocols import Model
from carrier.runtime import AgentRuntime
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel
from carrier.types import IncomingMessage, ModelRequest


class PrefillingModel(FakeModel):
    """A scripted model that records the prefixes it is asked to prefill; ``fail``
    makes prefilling raise, ``hold`` keeps it waiting until set."""

    __test__ = False

    def __init__(self, *, fail: bool = False, hold: asyncio.Event | None = None) -> None:
        super().__init__(default_text="Noted. I will keep that in mind for later.")
        self.prefilled: list[ModelRequest] = []
        self.fail = fail
        self.hold = hold

    async def prefill(self, prefix: ModelRequest) -> None:
        self.prefilled.append(prefix)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise RuntimeError("the slot is gone")


CHARACTER = Character(name="Testy", system="You are Testy.", bio=["Testy tests things."])


def runtime_on(host: PluginHost, large: Model, **kw: object) -> AgentRuntime:
    return AgentRuntime(
        CHARACTER,
        host=host,
        store=InMemoryStore(),
        models={"large": large, "small": FakeModel(), "embedding": None},
        **kw,  # type: ignore[arg-type]
    )


def said(user: str, turn: int) -> IncomingMessage:
    return IncomingMessage(
        text=f"Note {turn} from {user}: my locker number is {turn * 11}.",
        user_id=user,
        user_name=user.title(),
        room_id=f"dm-{user}",
    )


async def converse(runtime: AgentRuntime, turns: int) -> None:
    """``turns`` messages from Ada and Bob, each in their own room, interleaved; each
    waits for the prefill before it, as a user reading the answer would."""
    for turn in range(turns):
        for user in ("ada", "bob"):
            reply = await runtime.handle(said(user, turn))
            assert reply.error is None
            await reply.evaluated()
            await runtime.warmed()


def check_each_request_begins_with_the_prefill_before_it(large: PrefillingModel) -> None:
    for user in ("ada", "bob"):
        room = f"dm-{user}"
        requests = [r for r in large.requests if r.metadata.get("room_id") == room]
        prefills = [p for p in large.prefilled if p.metadata.get("room_id") == room]
        assert len(prefills) == len(requests)  # one after each answer
        for prefix, request in zip(prefills, requests[1:], strict=False):
            stable = request.metadata["prefix_messages"]
            assert prefix.metadata["prefix_messages"] == stable == len(prefix.messages)
            assert prefix.system == request.system
            assert prefix.messages == request.messages[:stable]
            assert prefix.metadata["history_ids"] == request.metadata["history_ids"]
            assert prefix.messages[-1].role == "assistant"  # the answer just given
            other = "Bob" if user == "ada" else "Ada"
            assert all(f"from {other.lower()}" not in m.content for m in prefix.messages)


async def test_after_each_answer_the_next_prefix_of_its_room_is_prefilled(
    host: PluginHost,
) -> None:
    large = PrefillingModel()
    async with runtime_on(host, large) as runtime:
        await converse(runtime, 4)
    check_each_request_begins_with_the_prefill_before_it(large)
    first = next(p for p in large.prefilled if p.metadata["room_id"] == "dm-ada")
    assert [m.content for m in first.messages] == [
        "Note 0 from ada: my locker number is 0.",
        "Noted. I will keep that in mind for later.",  # not small: answers come back whole
    ]


async def test_the_prefill_drops_the_block_the_next_request_drops() -> None:
    host = PluginHost(autoload=False, settings=CarrierSettings(_env_file=None, history_limit=6))
    large = PrefillingModel()
    async with runtime_on(host, large) as runtime:
        await converse(runtime, 10)
        drops = runtime._window.drops
    assert drops >= 4  # a window of 6 messages drops a block every other turn
    check_each_request_begins_with_the_prefill_before_it(large)
    lengths = [len(p.messages) for p in large.prefilled if p.metadata["room_id"] == "dm-ada"]
    assert any(b < a for a, b in itertools.pairwise(lengths))  # a drop, prefilled


async def test_no_prefill_without_warm_up_or_for_a_model_without_one(host: PluginHost) -> None:
    large = PrefillingModel()
    async with runtime_on(host, large, warm_up=False) as runtime:
        await converse(runtime, 2)
    assert large.prefilled == []
    plain = FakeModel(default_text="Noted.")  # the default Model.prefill: nothing to do
    async with runtime_on(PluginHost(autoload=False), plain) as runtime:
        await converse(runtime, 2)
        assert not runtime._prefills


async def test_a_failed_prefill_is_logged_and_the_next_message_answered(
    host: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    large = PrefillingModel(fail=True)
    with caplog.at_level(logging.INFO, logger="carrier.runtime"):
        async with runtime_on(host, large) as runtime:
            await converse(runtime, 2)
            reply = await runtime.handle(said("ada", 2))
    assert reply.error is None
    answer = "Noted. I will keep that in mind for later."
    assert [r.content.text for r in reply.responses] == [answer]
    assert "Prefilling room dm-ada's next prefix failed: the slot is gone" in caplog.text


async def test_stopping_cancels_a_prefill_in_flight(host: PluginHost) -> None:
    large = PrefillingModel(hold=asyncio.Event())  # never set: the prefill would wait forever
    async with runtime_on(host, large) as runtime:
        reply = await runtime.handle(said("ada", 0))
        await reply.evaluated()
        await asyncio.sleep(0)
        assert runtime._prefills
    assert len(large.prefilled) == 1
    assert not runtime._prefills


@pytest.mark.parametrize(
    ("small", "setting", "limit"), [(True, None, 16), (False, None, 32), (True, 24, 24)]
)
async def test_a_small_models_window_is_half_as_long_unless_set(
    small: bool, setting: int | None, limit: int
) -> None:
    settings = CarrierSettings(_env_file=None, history_limit=setting)
    large = PrefillingModel()
    large.small = small
    async with runtime_on(PluginHost(autoload=False, settings=settings), large) as runtime:
        await converse(runtime, 24)
    for user in ("ada", "bob"):
        requests = [r for r in large.requests if r.metadata["room_id"] == f"dm-{user}"]
        longest = max(len(r.messages) for r in requests)  # its history, and the new message
        assert longest == limit - 1
    check_each_request_begins_with_the_prefill_before_it(large)
