"""The warm-up: a runtime's models get ready in the background while it starts.

When :class:`~carrier.runtime.AgentRuntime` starts (``warm_up=True``, the default), it
calls :meth:`Model.warm_up <carrier.protocols.Model.warm_up>` in a background task on
the models a message needs before its answer starts: first the embedding model (a
message is embedded before it is answered), then the large model. So ``start()``
returns at once and a chat shows its prompt while a local model loads. The large
model gets the agent's persona: every system prompt the runtime composes begins with
it, byte for byte (:mod:`carrier.layout`), so a prompt cache that holds it (llama.cpp's
slot) serves the first message of every room. Nothing of any user is in it. The small
model is not warmed: a direct chat's answer never waits for it, and loading it would
slow the first answer down on a machine with few cores.

A failure is logged (the first message reports it again) and never stops the runtime.
Each model that warms (overrides ``warm_up``) reports a ``model_warmed`` event:
``model``, ``model_class``, ``ok``, ``error`` and the time it took.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from carrier.protocols import Model
from carrier.types import EventType, ModelClass, ModelRequest

if TYPE_CHECKING:
    from carrier.model_chain import ModelChain
    from carrier.runtime import AgentRuntime

__all__ = ["warm_up"]

logger = logging.getLogger("carrier.runtime")


async def warm_up(
    runtime: AgentRuntime, chains: dict[ModelClass, ModelChain | None], persona: str
) -> None:
    """Warm the embedding and large models of ``chains``, one after the other (never
    raises; what fails is logged and reported in a ``model_warmed`` event)."""
    for model_class in (ModelClass.EMBEDDING, ModelClass.LARGE):
        chain = chains.get(model_class)
        if chain is None or type(chain.primary).warm_up is Model.warm_up:
            continue  # nothing to warm: no event either
        model = chain.primary
        chat = model_class is ModelClass.LARGE
        name = model.name if chat else model.embedding_name or model.name
        prefix = ModelRequest(model_class=model_class, system=persona if chat else None)
        started = time.perf_counter()
        error: str | None = None
        try:
            await model.warm_up(prefix)
        except Exception as exc:  # never stops the runtime: the first message reports it
            error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "Warming up the %s model %s failed; the first message will try again: %s",
                model_class.value,
                name,
                error,
            )
        await runtime.emit(
            EventType.MODEL_WARMED,
            duration_ms=(time.perf_counter() - started) * 1000,
            model=name,
            model_class=model_class.value,
            ok=error is None,
            error=error,
        )
