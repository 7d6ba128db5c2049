"""``run_with_timeouts``: eager start, concurrency, timeouts, context and cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from carrier.eager import TimedOut, run_with_timeouts

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="caller")


async def immediate(value: str) -> str:
    return value


async def sleeper(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def failing() -> str:
    raise ValueError("provider bug")


async def test_calls_that_never_wait_finish_without_a_turn_of_the_loop() -> None:
    turned: list[str] = []
    asyncio.get_running_loop().call_soon(turned.append, "loop turned")
    outcomes = await run_with_timeouts([(immediate("a"), 1.0), (immediate("b"), 1.0)])
    assert outcomes == ["a", "b"]
    assert turned == []  # the callback queued before the call has not run yet


async def test_waiting_calls_run_concurrently_with_results_in_call_order() -> None:
    started = time.perf_counter()
    outcomes = await run_with_timeouts(
        [
            (immediate("first"), 1.0),
            (sleeper(0.3, "slow"), 2.0),
            (sleeper(0.3, "slow too"), 2.0),
            (sleeper(0.1, "quick"), 2.0),
            (immediate("last"), 1.0),
        ]
    )
    assert outcomes == ["first", "slow", "slow too", "quick", "last"]
    assert time.perf_counter() - started < 0.55  # 0.3 s at once, not 0.7 s in a row


async def test_each_call_times_out_on_its_own_deadline() -> None:
    started = time.perf_counter()
    outcomes = await run_with_timeouts(
        [
            (sleeper(5, "never"), 0.1),  # the first that waits: continued in this task
            (sleeper(0.05, "in time"), 1.0),
            (sleeper(5, "never either"), 0.2),  # a task of its own
        ]
    )
    assert isinstance(outcomes[0], TimedOut)
    assert str(outcomes[0]) == "timed out after 0.1 s"
    assert outcomes[1] == "in time"
    assert isinstance(outcomes[2], TimedOut)
    assert str(outcomes[2]) == "timed out after 0.2 s"
    assert time.perf_counter() - started < 1.0


async def test_exceptions_are_outcomes_not_raised() -> None:
    async def failing_later() -> str:
        await asyncio.sleep(0.01)
        raise KeyError("late")

    outcomes = await run_with_timeouts(
        [(failing(), 1.0), (failing_later(), 1.0), (failing_later(), 1.0)]
    )
    assert [type(o) for o in outcomes] == [ValueError, KeyError, KeyError]
    assert str(outcomes[0]) == "provider bug"


async def test_timeouts_inside_a_call_belong_to_the_task_it_runs_in() -> None:
    # asyncio.timeout (like anyio's cancel scopes) binds to the current task when it
    # is entered; each call must exit it in that same task.
    async def with_own_timeout(value: str) -> str:
        task = asyncio.current_task()
        async with asyncio.timeout(5):
            await asyncio.sleep(0.02)
        assert asyncio.current_task() is task
        return value

    outcomes = await run_with_timeouts(
        [(with_own_timeout("a"), 1.0), (with_own_timeout("b"), 1.0), (with_own_timeout("c"), 1.0)]
    )
    assert outcomes == ["a", "b", "c"]


async def test_context_variables_set_by_a_call_stay_in_that_call() -> None:
    seen: list[str] = []

    async def setter(value: str, wait: float) -> str:
        marker.set(value)
        await asyncio.sleep(wait)
        seen.append(marker.get())
        return value

    async def reader() -> str:
        return marker.get()

    outcomes = await run_with_timeouts(
        [(setter("one", 0), 1.0), (reader(), 1.0), (setter("two", 0.02), 1.0), (reader(), 1.0)]
    )
    assert outcomes == ["one", "caller", "two", "caller"]
    assert sorted(seen) == ["one", "two"]
    assert marker.get() == "caller"


async def test_cancelling_the_caller_cancels_the_calls_and_leaves_none_unawaited() -> None:
    cancelled: list[str] = []

    async def cancellable(name: str) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    runner = asyncio.create_task(
        run_with_timeouts([(cancellable("in this task"), 10.0), (cancellable("in a task"), 10.0)])
    )
    await asyncio.sleep(0.05)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await asyncio.sleep(0.01)
    assert sorted(cancelled) == ["in a task", "in this task"]


async def test_an_interrupt_in_a_first_step_closes_the_calls_not_started() -> None:
    async def interrupting() -> str:
        raise KeyboardInterrupt

    never = immediate("never started")
    with pytest.raises(KeyboardInterrupt):
        await run_with_timeouts([(interrupting(), 1.0), (never, 1.0)])
    assert never.cr_frame is None  # closed: no "coroutine was never awaited" warning
