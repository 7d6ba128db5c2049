"""Running plugins' providers and evaluators concurrently, each under its timeout
(:func:`carrier.eager.run_with_timeouts`).

A slow or failing one is reported (``provider_failed`` / ``evaluator_failed``) and
never stalls or breaks the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from carrier.eager import TimedOut, run_with_timeouts
from carrier.errors import CarrierError
from carrier.types import EvaluatorResult, EventType, Memory, ModelClass, ProviderOutput, State

if TYPE_CHECKING:
    from carrier.protocols import Evaluator, Provider
    from carrier.runtime import AgentRuntime

__all__ = [
    "run_evaluators",
    "run_providers",
    "small_model",
    "token_counter",
    "trim_to_tokens",
]

logger = logging.getLogger("carrier.runtime")


async def run_providers(
    runtime: AgentRuntime,
    providers: list[Provider],
    message: Memory,
    state: State,
    *,
    dynamic: bool = False,
) -> None:
    """Run the providers concurrently, each under its timeout (its own ``timeout_s``,
    at most ``CARRIER_PROVIDER_TIMEOUT_S``) and token budget, and put their outputs in
    ``state.providers`` in provider order. Dynamic providers run only with ``dynamic``
    (when an action asks for them through ``AgentRuntime.provide``)."""
    if not dynamic:
        providers = [p for p in providers if not p.dynamic]
    cap = runtime.settings.provider_timeout_s
    outcomes = await run_with_timeouts(
        [(p.get(runtime, message, state), min(p.timeout_s, cap)) for p in providers]
    )
    count: Callable[[str], int] | None = None
    for provider, outcome in zip(providers, outcomes, strict=True):
        if isinstance(outcome, ProviderOutput):
            outcome.trusted = provider.trusted
            outcome.label = provider.name
            if provider.max_tokens is not None and outcome.text:
                count = count or token_counter(runtime)
                outcome.text = trim_to_tokens(outcome.text, provider.max_tokens, count)
            state.providers[provider.name] = outcome
            continue
        if isinstance(outcome, TimedOut):
            error = str(outcome)
        elif isinstance(outcome, CarrierError):  # an expected failure, explained
            error = f"{type(outcome).__name__}: {outcome}"
            logger.warning("Provider %r failed: %s", provider.name, error)
        elif isinstance(outcome, BaseException):
            logger.error("Provider %r failed", provider.name, exc_info=outcome)
            error = f"{type(outcome).__name__}: {outcome}"
        else:
            error = f"returned {type(outcome).__name__}, not a ProviderOutput"
            logger.error("Provider %r %s", provider.name, error)
        await runtime.emit(EventType.PROVIDER_FAILED, message, provider=provider.name, error=error)


def trim_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Cut ``text`` to fit ``budget`` tokens, ellipsis included, at a line or word
    boundary when there is one in the second half; ``""`` when nothing fits."""
    if count(text) <= budget:
        return text
    low, high = 0, len(text)
    while low < high:  # longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if count(text[:middle] + " …") <= budget:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    for separator in ("\n", " "):
        if separator in cut[len(cut) // 2 :]:
            cut = cut[: cut.rindex(separator)]
            break
    return (cut.rstrip() + " …") if cut.strip() else ""


def token_counter(runtime: AgentRuntime) -> Callable[[str], int]:
    """The large model's token counter, or a four-characters-per-token estimate."""
    chain = runtime._chains.get(ModelClass.LARGE)
    if chain is not None:
        return chain.primary.count_tokens
    return lambda text: len(text) // 4 + 1


def small_model(runtime: AgentRuntime) -> bool:
    """Whether the large model is a small one (``Model.small``, such as the default
    local SmolLM2-135M): prompts stay short, reasoning evaluators are off."""
    chain = runtime._chains.get(ModelClass.LARGE)
    return chain is not None and bool(getattr(chain.primary, "small", False))


async def run_evaluators(
    runtime: AgentRuntime,
    evaluators: list[Evaluator],
    message: Memory,
    state: State,
    responses: list[Memory],
) -> list[EvaluatorResult]:
    """Run the evaluators that apply concurrently, each under its timeout; a failure
    becomes an unsuccessful result and an ``evaluator_failed`` event. With a small large
    model, those that need a capable one (``needs_capable_model``) do not run."""
    started = time.perf_counter()
    if small_model(runtime):  # what a small model cannot judge is left undone
        evaluators = [e for e in evaluators if not e.needs_capable_model]

    async def evaluate(evaluator: Evaluator) -> EvaluatorResult | None:
        if not (evaluator.always_run or responses):
            return None
        if not await evaluator.validate(runtime, message, state):
            return None
        result = await evaluator.handler(runtime, message, state, responses)
        return result or EvaluatorResult(name=evaluator.name)

    outcomes = await run_with_timeouts([(evaluate(e), e.timeout_s) for e in evaluators])
    duration = (time.perf_counter() - started) * 1000
    results: list[EvaluatorResult] = []
    for evaluator, outcome in zip(evaluators, outcomes, strict=True):
        if outcome is None:
            continue
        if isinstance(outcome, EvaluatorResult):
            results.append(outcome)
            await runtime.emit(
                EventType.EVALUATOR_COMPLETED, message, duration, evaluator=evaluator.name
            )
            continue
        text = str(outcome)
        error = f"{type(outcome).__name__}: {text}" if text else type(outcome).__name__
        if isinstance(outcome, TimedOut):
            error = text
        logger.warning("Evaluator %r failed: %s", evaluator.name, error)
        await runtime.emit(
            EventType.EVALUATOR_FAILED, message, evaluator=evaluator.name, error=error
        )
        results.append(EvaluatorResult(name=evaluator.name, success=False, error=error))
    return results
