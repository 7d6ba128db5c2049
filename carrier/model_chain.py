"""``ModelChain``: the kernel's one retry loop and the fallback chain of models.

A spec such as ``"anthropic:claude-sonnet-4-5 -> openai:gpt-4.1-mini -> local"``
becomes a chain. Each link is retried with exponential backoff and jitter on
``TransientModelError`` (honouring ``retry_after``) within an attempt count and a
time budget; when a link fails for good, or answers something that fails
validation, the next link is tried. SDK clients are built with ``max_retries=0``
so this is the only retry loop.

Streams are delivered exactly once. While a streamed answer has passed no text to
the client (``on_text``), a failure is retried and falls back as above. Once text has
reached the client nothing is retried or tried again elsewhere, since a new attempt
would send its text a second time ("Hello Hello world"): the chain raises a plain
``ModelError`` (not a ``TransientModelError``, so no outer loop retries it either)
that says how much text was streamed, with the link's error as ``__cause__``. The
text already sent stands; the caller shows the error after it. A response whose text
was streamed but which fails ``validate`` raises the same way instead of falling back.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from time import time
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from carrier.errors import ModelError, ModelRejectedError, TransientModelError
from carrier.protocols import Model
from carrier.storable import storable, storable_response
from carrier.types import ModelRequest, ModelResponse

__all__ = ["ModelChain", "RetryPolicy", "parse_model_spec", "parse_retry_after"]

#: ``on_event(kind, data)`` — the runtime turns these into MODEL_RETRY/FALLBACK events.
ChainObserver = Callable[[str, dict[str, Any]], Awaitable[None]]
#: ``on_text(delta)`` — receives each streamed text delta.
TextSink = Callable[[str], Awaitable[None]]

_ARROW = re.compile(r"\s*(?:->|→|,)\s*")


def parse_model_spec(spec: str) -> list[tuple[str, str | None]]:
    """``"a:x -> b"`` → ``[("a", "x"), ("b", None)]``."""
    links: list[tuple[str, str | None]] = []
    for part in _ARROW.split(spec.strip()):
        if not part:
            continue
        backend, _, model = part.partition(":")
        links.append((backend.strip(), model.strip() or None))
    return links


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date).

    For plugins translating a 429/503: pass the response headers and put the result in
    ``TransientModelError(retry_after=...)``; the retry loop never waits less.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(when - (time() if now is None else now), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry one link before falling back."""

    attempts: int = 4
    budget_s: float = 60.0
    initial_s: float = 0.5
    max_wait_s: float = 20.0
    jitter_s: float = 0.5


class _WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never less than the server's ``Retry-After``."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
        )
        self._cap = policy.budget_s

    def __call__(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            wait = max(wait, float(retry_after))
        return min(wait, self._cap)


class ModelChain:
    """A fallback chain of models sharing one retry policy."""

    def __init__(self, links: Sequence[Model], *, policy: RetryPolicy | None = None) -> None:
        if not links:
            raise ValueError("A model chain needs at least one model.")
        self.links = list(links)
        self.policy = policy or RetryPolicy()
        self._wait = _WaitHonouringRetryAfter(self.policy)

    @property
    def primary(self) -> Model:
        return self.links[0]

    @property
    def name(self) -> str:
        return " -> ".join(link.name for link in self.links)

    async def _retrying(
        self,
        link: Model,
        call: Callable[[], Awaitable[Any]],
        on_event: ChainObserver | None,
        *,
        may_retry: Callable[[], bool] = lambda: True,
    ) -> Any:
        """``call()``, retried on ``TransientModelError`` while ``may_retry()`` is true."""
        # Fast path: no retry machinery until a call has failed transiently.
        try:
            return await call()
        except TransientModelError as exc:
            if not may_retry():
                raise
            first_error: TransientModelError | None = exc

        async def again() -> Any:
            nonlocal first_error
            if first_error is not None:  # tenacity's attempt 1 is the call that failed
                error, first_error = first_error, None
                raise error
            return await call()

        async def before_sleep(state: RetryCallState) -> None:
            if on_event is not None and state.outcome is not None:
                await on_event(
                    "retry",
                    {
                        "model": link.name,
                        "attempt": state.attempt_number,
                        "error": str(state.outcome.exception()),
                        "wait_s": round(state.upcoming_sleep, 3),
                    },
                )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts) | stop_after_delay(self.policy.budget_s),
            wait=self._wait,
            retry=retry_if_exception(
                lambda error: isinstance(error, TransientModelError) and may_retry()
            ),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(again)

    async def generate(
        self,
        request: ModelRequest,
        *,
        on_event: ChainObserver | None = None,
        on_text: TextSink | None = None,
        validate: Callable[[ModelResponse], str | None] | None = None,
    ) -> ModelResponse:
        """Answer with the first link that succeeds; its texts (and the streamed
        deltas) without what no store can keep (:mod:`carrier.storable`).

        Args:
            request: The request.
            on_event: Told about each retry and fallback.
            on_text: When given, the answer is streamed and each text delta passed on,
                exactly once. A failure before the first delta is retried and falls
                back as usual. Once a delta has been passed on, nothing is retried or
                falls back (the client would receive the text twice): the call raises
                ``ModelError`` instead, and the text already passed on stands.
            validate: Returns a reason when a response is unusable; the next link
                is then tried (unless its text was already streamed: ``ModelError``).

        Raises:
            ModelError: Every link failed; or a streamed answer failed after some of
                its text had been passed to ``on_text``. The latter is never a
                ``TransientModelError`` (retrying would repeat the text); its message
                says how much was streamed and ``__cause__`` is the link's error.
        """
        errors: list[str] = []
        for index, link in enumerate(self.links):
            sent = _Sent(on_text)
            call = partial(self._answer, link, request, sent)
            try:
                response: ModelResponse = await self._retrying(
                    link, call, on_event, may_retry=sent.nothing_sent
                )
            except ModelError as exc:
                if sent.chars:
                    raise _interrupted(link, sent, str(exc)) from exc
                errors.append(f"{link.name}: {exc}")
                reason = str(exc)
            else:
                response = storable_response(response)  # NUL, lone surrogates
                problem = validate(response) if validate is not None else None
                if problem is None:
                    return response
                if sent.chars:
                    raise _interrupted(link, sent, problem)
                errors.append(f"{link.name}: {problem}")
                reason = problem
            if index + 1 < len(self.links) and on_event is not None:
                await on_event(
                    "fallback",
                    {"from": link.name, "to": self.links[index + 1].name, "reason": reason},
                )
        raise ModelError(
            "Every model in the chain failed: " + "; ".join(errors) + ". "
            "Check the backends' settings and status, or add a fallback model."
        )

    @staticmethod
    async def _answer(link: Model, request: ModelRequest, sent: _Sent) -> ModelResponse:
        """One attempt of ``link``: generated, or streamed through ``sent``."""
        if not sent.streaming:
            return await link.generate(request)
        final: ModelResponse | None = None
        async for chunk in link.stream(request):
            if chunk.text:
                await sent.send(chunk.text)
            if chunk.response is not None:
                final = chunk.response
        if final is None:
            raise ModelRejectedError(f"{link.name} ended its stream without a response.")
        return final

    async def embed(
        self, texts: Sequence[str], *, on_event: ChainObserver | None = None
    ) -> list[list[float]]:
        """Embed with the primary link only: vectors of two models do not mix."""
        link = self.primary

        async def call() -> list[list[float]]:
            return await link.embed(texts)

        result: list[list[float]] = await self._retrying(link, call, on_event)
        return result

    async def aclose(self) -> None:
        for link in self.links:
            await link.aclose()


class _Sent:
    """Passes one link's streamed text to ``on_text`` and counts what it passed."""

    def __init__(self, on_text: TextSink | None) -> None:
        self._on_text = on_text
        #: Characters passed on so far; once non-zero the link is never called again.
        self.chars = 0

    @property
    def streaming(self) -> bool:
        return self._on_text is not None

    def nothing_sent(self) -> bool:
        """Whether the link may still be retried: no text has reached the client."""
        return self.chars == 0

    async def send(self, text: str) -> None:
        assert self._on_text is not None
        text = storable(text)  # as the stored answer will be (storable_response)
        if not text:
            return
        # Counted before the await: text a failing sink may have shown is never resent.
        self.chars += len(text)
        await self._on_text(text)


def _interrupted(link: Model, sent: _Sent, reason: str) -> ModelError:
    return ModelError(
        f"{link.name} failed after {sent.chars} characters of its answer had been "
        f"streamed to the client: {reason.rstrip('.')}. It was not retried and no fallback model "
        f"was asked, because the client would have received that text twice; the "
        f"partial answer stands. Ask again to get a whole answer."
    )
