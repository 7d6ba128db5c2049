"""Running plugins' providers and evaluators concurrently, each under its timeout.

A slow or failing one is reported (``provider_failed`` / ``evaluator_failed``) and
never stalls or breaks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from carrier.types import EvaluatorResult, EventType, Memory, ModelClass, ProviderOutput, State

if TYPE_CHECKING:
    from carrier.protocols import Evaluator, Provider
    from carrier.runtime import AgentRuntime

__all__ = ["run_evaluators", "run_providers", "trim_to_tokens"]

logger = logging.getLogger("carrier.runtime")


async def run_providers(
    runtime: AgentRuntime, providers: list[Provider], message: Memory, state: State
) -> None:
    """Run the non-dynamic providers concurrently, each under its timeout and token
    budget, and put their outputs in ``state.providers`` in provider order."""
    providers = [p for p in providers if not p.dynamic]
    outputs: dict[str, ProviderOutput] = {}

    async def run(provider: Provider) -> None:
        try:
            output = await asyncio.wait_for(
                provider.get(runtime, message, state), timeout=provider.timeout_s
            )
            if provider.max_tokens is not None and output.text:
                count = _counter(runtime)
                output.text = trim_to_tokens(output.text, provider.max_tokens, count)
            outputs[provider.name] = output
        except TimeoutError:
            await runtime.emit(
                EventType.PROVIDER_FAILED,
                message,
                provider=provider.name,
                error=f"timed out after {provider.timeout_s} s",
            )
        except Exception as exc:
            logger.exception("Provider %r failed", provider.name)
            await runtime.emit(
                EventType.PROVIDER_FAILED,
                message,
                provider=provider.name,
                error=f"{type(exc).__name__}: {exc}",
            )

    await asyncio.gather(*(run(p) for p in providers))
    # sections in provider order (position), whatever order they finished in
    for provider in providers:
        if provider.name in outputs:
            state.providers[provider.name] = outputs[provider.name]


def trim_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Cut ``text`` to fit ``budget`` tokens, ellipsis included, at a line or word
    boundary when there is one in the second half."""
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
    return cut.rstrip() + " …"


def _counter(runtime: AgentRuntime) -> Callable[[str], int]:
    """The large model's token counter, or a four-characters-per-token estimate."""
    chain = runtime._chains.get(ModelClass.LARGE)
    if chain is not None:
        return chain.primary.count_tokens
    return lambda text: len(text) // 4 + 1


async def run_evaluators(
    runtime: AgentRuntime,
    evaluators: list[Evaluator],
    message: Memory,
    state: State,
    responses: list[Memory],
) -> list[EvaluatorResult]:
    """Run the evaluators that apply concurrently, each under its timeout; a failure
    becomes an unsuccessful result and an ``evaluator_failed`` event."""

    async def run(evaluator: Evaluator) -> EvaluatorResult | None:
        started = time.perf_counter()
        try:
            if not (evaluator.always_run or responses) or not await evaluator.validate(
                runtime, message, state
            ):
                return None
            result = await asyncio.wait_for(
                evaluator.handler(runtime, message, state, responses),
                timeout=evaluator.timeout_s,
            ) or EvaluatorResult(name=evaluator.name)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning("Evaluator %r failed: %s", evaluator.name, error)
            await runtime.emit(
                EventType.EVALUATOR_FAILED, message, evaluator=evaluator.name, error=error
            )
            return EvaluatorResult(name=evaluator.name, success=False, error=error)
        await runtime.emit(
            EventType.EVALUATOR_COMPLETED,
            message,
            (time.perf_counter() - started) * 1000,
            evaluator=evaluator.name,
        )
        return result

    outcomes = await asyncio.gather(*(run(e) for e in evaluators))
    return [o for o in outcomes if o is not None]
