"""Running a stage's coroutines concurrently, each under its own timeout, started eagerly.

Each coroutine starts at once, in the calling task, in order: the way JavaScript runs
an async function up to its first ``await`` (ElizaOS's providers run that way) and
Python 3.12's eager tasks do. Most providers and evaluators never wait for anything
(they format the state, or read a local SQLite file inline), and then cost neither a
task nor a turn of the event loop; with a task each, a turn of bootstrap's eight
providers and three evaluators took ~90 µs longer on the CI machine.

The first coroutine that does wait goes on in the calling task, the one it started
in, so ``asyncio.current_task()``, ``asyncio.timeout`` and anyio cancel scopes keep
meaning what they meant at its start; the coroutines after it start as tasks of their
own and run alongside it. Each coroutine runs in its own copy of the caller's context
variables, as it would in a task. One difference remains: if that first waiting call
swallows its cancellation (``except CancelledError`` without re-raising), it holds the
stage until it ends, where a task of its own would have been left running behind.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

__all__ = ["TimedOut", "run_with_timeouts"]


class TimedOut(Exception):  # noqa: N818 - an outcome, not raised
    """The outcome of a call that ran past its timeout (it was cancelled)."""


class _Resume:
    """Awaiting it continues ``coroutine`` (its first step already ran) in the
    awaiting task and context: what ``yield from`` does, one step late."""

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        yielded: Any,
        context: contextvars.Context,
    ) -> None:
        self.coroutine = coroutine
        self.yielded = yielded
        self.context = context

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, context, yielded = self.coroutine, self.context, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # thrown in by the task: cancellation
                step = context.run(_throw, coroutine, exc)
            else:
                step = context.run(_send, coroutine, sent)
            done, yielded = step
            if done:
                return yielded


def _send(coroutine: Coroutine[Any, Any, Any], value: Any) -> tuple[bool, Any]:
    try:
        return False, coroutine.send(value)
    except StopIteration as stop:
        return True, stop.value


def _throw(coroutine: Coroutine[Any, Any, Any], exc: BaseException) -> tuple[bool, Any]:
    try:
        return False, coroutine.throw(exc)
    except StopIteration as stop:
        return True, stop.value


async def run_with_timeouts(
    calls: Sequence[tuple[Coroutine[Any, Any, Any], float]],
) -> list[Any]:
    """Run coroutines concurrently, each cancelled after its own timeout (seconds,
    counted from this call), started eagerly (see the module's docstring).

    Returns one outcome per call, in order: its result, the exception it raised,
    or a ``TimedOut`` instance.
    """
    if not calls:
        return []
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes: list[Any] = [None] * len(calls)
    waiting: tuple[int, _Resume] | None = None
    tasks: dict[int, asyncio.Task[Any]] = {}
    begun = 0  # calls started so far; a coroutine never started is closed on failure
    try:
        for index, (call, _) in enumerate(calls):
            begun = index + 1
            if waiting is not None:
                tasks[index] = loop.create_task(call)
                continue
            context = contextvars.copy_context()
            try:
                done, value = context.run(_send, call, None)
            except Exception as exc:
                outcomes[index] = exc
                continue
            if done:
                outcomes[index] = value
            else:
                waiting = index, _Resume(call, value, context)
        if waiting is not None:
            index, resume = waiting
            deadline = asyncio.timeout_at(started + calls[index][1])
            try:
                async with deadline:
                    outcomes[index] = await resume
            except Exception as exc:
                outcomes[index] = _timed_out(calls[index][1]) if deadline.expired() else exc
    except BaseException:
        for task in tasks.values():
            _abandon(task)
        for call, _ in calls[begun:]:
            call.close()
        raise
    if tasks:
        await _wait_for_tasks(tasks, calls, started, outcomes)
    return outcomes


async def _wait_for_tasks(
    tasks: dict[int, asyncio.Task[Any]],
    calls: Sequence[tuple[Coroutine[Any, Any, Any], float]],
    started: float,
    outcomes: list[Any],
) -> None:
    """Wait for ``tasks`` (by call index) until each one's deadline and put their
    outcomes in ``outcomes``. The tasks share one timer per distinct timeout: a
    timer per task costs more than most providers."""
    loop = asyncio.get_running_loop()
    timeout_of = {task: calls[index][1] for index, task in tasks.items()}
    pending = {task for task in tasks.values() if not task.done()}
    timed_out: set[asyncio.Task[Any]] = set()
    try:
        for deadline in sorted({timeout_of[task] for task in pending}):
            if not pending:
                break
            remaining = max(0.0, started + deadline - loop.time())
            _, pending = await asyncio.wait(pending, timeout=remaining)
            for task in [t for t in pending if timeout_of[t] <= deadline]:
                _abandon(task)
                timed_out.add(task)
                pending.discard(task)
    except BaseException:
        for task in pending:
            _abandon(task)
        raise
    for index, task in tasks.items():
        if task in timed_out:
            outcomes[index] = _timed_out(timeout_of[task])
        elif task.exception() is not None:
            outcomes[index] = task.exception()
        else:
            outcomes[index] = task.result()


def _timed_out(timeout: float) -> TimedOut:
    return TimedOut(f"timed out after {timeout} s")


def _abandon(task: asyncio.Task[Any]) -> None:
    """Cancel ``task``; it finishes in the background, a late error retrieved there."""
    task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
