"""The workers plugin's retry policies, all tenacity (STYLE §4: one retry library).

Each factory returns a fresh ``AsyncRetrying`` (tenacity keeps a call's state on the
object, so concurrent calls must not share one). Every retry is logged with the error
and the wait (WARNING; ERROR for a failure no wait can cure, INFO while another
process's run goes on); a policy that gives up raises the last error itself, or
returns what its caller expects (noted below).

=========================  ===========================  ====================  ================
policy                     retries                      waits (+ jitter)      gives up
=========================  ===========================  ====================  ================
:func:`reading_answer`     ``StoreError``               0.1 s, doubling, 2 s  after 20 tries
:func:`enqueueing`         connection errors            none                  after pool size
                                                                              + 1 tries
:func:`recording_outcome`  connection errors            0.1 s, doubling, 2 s  after 60 s
:func:`reconnecting`       connection errors,           0.5 s, doubling, 10 s when stopped
                           ``QueueUnreachableError``                          (returns None)
:func:`checking_jobs`      any error                    10 polls, doubling,   when nobody
                                                        1 s                   waits (``[]``)
:func:`awaiting_run`       ``Reply.in_progress``        0.1 s, doubling, 2 s  after 2 lease
                                                                              TTLs (the reply)
=========================  ===========================  ====================  ================

Job retries (a message whose attempt failed) are not here: procrastinate keeps them in
PostgreSQL, so they survive the worker (``worker._Backoff``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg_pool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from carrier.errors import StoreError
from carrier.types import Reply
from carrier_plugin_workers.queue import QUEUE_ERRORS, QueueUnreachableError, is_connection_error

__all__ = [
    "READ_ATTEMPTS",
    "RECORD_FOR_S",
    "awaiting_run",
    "checking_jobs",
    "enqueueing",
    "reading_answer",
    "reconnecting",
    "recording_outcome",
]

logger = logging.getLogger("carrier.workers")

#: Tries to read a finished job's answer from the store (about 30 s with backoff).
READ_ATTEMPTS = 20
#: How long a worker keeps trying to record a job's outcome.
RECORD_FOR_S = 60.0


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def reading_answer(message_id: str) -> AsyncRetrying:
    """Reading a finished message's answer while the store restarts: the answer is there."""

    def log(state: RetryCallState) -> None:
        logger.warning(
            "Reading the answer to %s failed (%s); retrying in %.1f s",
            message_id,
            _error(state),
            state.upcoming_sleep,
        )

    return AsyncRetrying(
        stop=stop_after_attempt(READ_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
        retry=retry_if_exception_type(StoreError),
        before_sleep=log,
        reraise=True,
    )


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, QUEUE_ERRORS) and is_connection_error(exc)


def _lent_dead(exc: BaseException) -> bool:
    """A connection the pool lent was lost, not: the pool found none to lend."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg_pool.PoolTimeout):
            return False
        seen = seen.__cause__
    return _unreachable(exc)


def recording_outcome() -> AsyncRetrying:
    """Recording a job's outcome (``succeeded``, ``failed``, retry) through a PostgreSQL
    restart, for up to :data:`RECORD_FOR_S`; other errors are raised at once."""

    def log(state: RetryCallState) -> None:
        logger.warning(
            "Recording a job's outcome failed (%s); retrying in %.1f s",
            _error(state),
            state.upcoming_sleep,
        )

    return AsyncRetrying(
        stop=stop_after_delay(RECORD_FOR_S),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
        retry=retry_if_exception(_unreachable),
        before_sleep=log,
        reraise=True,
    )


def enqueueing(pool_size: int) -> AsyncRetrying:
    """Enqueueing on a pooled connection the server closed (a restart): the pool lends
    connections without a round trip to test them, so each such one fails a call and
    is dropped. Retried at once, up to ``pool_size`` more times (every pooled connection
    may be dead); other errors are raised at once, a pool that had no connection to lend
    in its timeout (the server is down) among them. A job that was stored before its
    connection broke is enqueued again: its message id makes the second a duplicate."""

    def log(state: RetryCallState) -> None:
        logger.info("Enqueueing met a closed connection (%s); retrying", _error(state))

    return AsyncRetrying(
        stop=stop_after_attempt(pool_size + 1),
        retry=retry_if_exception(_lent_dead),
        before_sleep=log,
        reraise=True,
    )


def reconnecting(stop: asyncio.Event) -> AsyncRetrying:
    """A worker connecting to the queue's PostgreSQL, as long as it takes, until ``stop``
    is set (then the call returns ``None``, at once even mid-wait). Errors other than an
    unreachable server (a refused password, a bug) are raised at once."""

    def log(state: RetryCallState) -> None:
        exc = _error(state)
        if isinstance(exc, QueueUnreachableError):  # already a sentence naming the host
            logger.warning("%s Retrying in %.1f s", exc, state.upcoming_sleep)
        else:
            logger.warning(
                "Lost the queue's PostgreSQL (%s); reconnecting in %.1f s",
                exc,
                state.upcoming_sleep,
            )

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    return AsyncRetrying(
        sleep=sleep,
        stop=lambda _: stop.is_set(),
        wait=wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5),
        retry=retry_if_exception_type(QueueUnreachableError) | retry_if_exception(_unreachable),
        before_sleep=log,
        retry_error_callback=lambda _: None,  # stopped while failing: nothing to raise
    )


def checking_jobs(poll_s: float, *, waited_on: Callable[[], bool]) -> AsyncRetrying:
    """The executor's query for finished jobs: it must outlive any failure (PostgreSQL
    restarting, a pool timeout), or its waiters would hang. Retried from ten polls up to
    1 s apart while ``waited_on()``; then the call returns ``[]``."""

    def log(state: RetryCallState) -> None:
        exc = _error(state)
        level = logging.WARNING if exc is not None and is_connection_error(exc) else logging.ERROR
        logger.log(
            level,
            "Cannot check finished jobs yet (%s); retrying in %.1f s",
            exc,
            state.upcoming_sleep,
        )

    first = min(1.0, 10 * poll_s)
    return AsyncRetrying(
        stop=lambda _: not waited_on(),
        wait=wait_exponential_jitter(multiplier=first, max=1.0, jitter=first),
        retry=retry_if_exception_type(Exception),
        before_sleep=log,
        retry_error_callback=lambda _: [],
    )


def awaiting_run(message_id: str, *, lease_ttl_s: float) -> AsyncRetrying:
    """Handling a message again while another process holds its run (``in_progress``):
    its answer comes, or its lease expires (a dead holder) and this worker takes the run
    over. After two lease TTLs the last ``in_progress`` reply is returned."""

    def log(state: RetryCallState) -> None:
        logger.info(
            "Message %s is being handled by another process; checking again in %.1f s",
            message_id,
            state.upcoming_sleep,
        )

    def still_running(reply: Any) -> bool:
        return isinstance(reply, Reply) and reply.in_progress

    return AsyncRetrying(
        stop=stop_after_delay(2 * lease_ttl_s),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
        retry=retry_if_result(still_running),
        before_sleep=log,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
