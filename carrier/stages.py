"""The loop's stages, as methods of ``LoopStages`` (the base of ``AgentRuntime``).

Receive → connect → store → (should respond) → compose state → compose context →
generate → act → evaluate → remember. Each stage takes and returns pydantic models,
so an executor can run and checkpoint them one by one. The stages up to the context
are in ``Composing`` (:mod:`carrier.composing`), the base of ``LoopStages``; this module
holds ``respond`` and the stages from the model's answer on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from carrier.composing import Composing
from carrier.plugin_calls import run_evaluators
from carrier.prompts import json_object
from carrier.steps import RECORD_TTL_S, Lease, idempotency_key
from carrier.streaming import SpeakerLabelFilter, after_break
from carrier.types import (
    ActionCall,
    ActionResult,
    Content,
    EventType,
    Memory,
    ModelRequest,
    ModelResponse,
    Reply,
    Role,
    Room,
    State,
)

if TYPE_CHECKING:
    from carrier.stores import TurnReads
    from carrier.types import EvaluatorResult

__all__ = ["LoopStages", "TextCallback"]

logger = logging.getLogger("carrier.runtime")

TextCallback = Callable[[str], Awaitable[None]]


class LoopStages(Composing):
    """The stages of the loop; ``AgentRuntime`` wires the parts they use."""

    # ---- respond, and the stages from the answer on ----------------------------------

    async def respond(
        self,
        message: Memory,
        room: Room,
        *,
        role: Role = Role.MEMBER,
        on_text: TextCallback | None = None,
        replay: bool = False,
        release: Lease | None = None,
        reads: TurnReads | None = None,
    ) -> Reply:
        """Stages 5-8 and 10 for a stored message: the responses are stored before any
        evaluator runs (``AgentRuntime.finish`` runs them; the reply carries the state).

        With ``replay`` (the message was handled before), recorded model responses and
        action outcomes are reused (``carrier.steps``). ``release``: the run's lease,
        released with the reply (nothing runs after it). ``reads``: the turn's reads
        (``MemoryStore.read_turn``), if made.
        """
        decision = await self._runtime.approvals.from_message(message, role)
        if decision is not None:  # "approve" / "reject" from the room (docs/approvals.md)
            said = Content(text=decision, source=message.content.source, in_reply_to=message.id)
            responses = await self.remember(message, [said], release=release)
            return Reply(message=message, responses=responses)
        if not await self.should_respond(message, room, reads=reads):
            ignored = await self.remember(
                message, [Content(actions=["IGNORE"])], ignored=True, release=release
            )
            return Reply(message=message, responses=ignored, ignored=True)
        state = await self.compose_state(message, room, role=role, reads=reads)
        started = time.perf_counter()
        request = self.compose_context(state)
        await self.emit(
            EventType.CONTEXT_COMPOSED,
            message,
            (time.perf_counter() - started) * 1000,
            turns=len(request.messages),
        )
        response = await self._model_step(message, 0, request, on_text=on_text, replay=replay)
        unrecorded: list[tuple[str, str]] = []  # the last call's outcome: with the reply
        contents, results = await self.act(
            message,
            state,
            response,
            role=role,
            on_text=on_text,
            replay=replay,
            unrecorded=unrecorded,
        )
        responses = await self.remember(message, contents, records=unrecorded, release=release)
        reply = Reply(
            message=message,
            responses=responses,
            action_results=results,
            ignored=not contents,
        )
        reply._pending = state
        return reply

    async def _model_step(
        self,
        message: Memory,
        step: int,
        request: ModelRequest,
        *,
        on_text: TextCallback | None,
        replay: bool,
    ) -> ModelResponse:
        """A step's model response: the recorded one in a replay, else the model's (then
        recorded when it chose actions, before they run)."""
        steps = self._steps if self.settings.record_steps else None
        if replay and steps is not None:
            recorded = await steps.response(message.id, step)
            if recorded is not None:
                return recorded
        response = await self.generate(request, message, on_text=on_text)
        if steps is not None and response.action_calls:
            await steps.record_response(message.id, step, response)
        return response

    async def generate(
        self,
        request: ModelRequest,
        message: Memory | None = None,
        *,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        """Stage 7: the model answers (retries and fallbacks inside the chain)."""
        started = time.perf_counter()
        chain = self.model(request.model_class)
        labels = SpeakerLabelFilter(self._speaker_names, on_text) if on_text else None
        first_chunk: list[float] = []
        sink: TextCallback | None = None
        if labels is not None:
            send = labels.send

            async def sink(text: str) -> None:
                if not first_chunk:
                    first_chunk.append(time.perf_counter())
                await send(text)

        validate = _require_structured if request.response_schema is not None else None
        events = self._chain_events_for(message)
        response = await chain.generate(request, on_event=events, on_text=sink, validate=validate)
        if labels is not None:
            await labels.flush()
        await self.emit(
            EventType.MODEL_USED,
            message,
            (time.perf_counter() - started) * 1000,
            model=response.model or chain.primary.name,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cache_read_input_tokens=response.usage.cache_read_input_tokens,
            cache_write_input_tokens=response.usage.cache_write_input_tokens,
            reasoning_output_tokens=response.usage.reasoning_output_tokens,
            # for tracing (carrier-plugin-otel): what was asked, of whom, and how it went
            request_model=chain.primary.name,
            model_class=request.model_class.value,
            finish_reason=response.finish_reason,
            streamed=labels is not None,
            first_chunk_ms=(first_chunk[0] - started) * 1000 if first_chunk else None,
            request=request,
            response=response,
        )
        return response

    async def act(
        self,
        message: Memory,
        state: State,
        response: ModelResponse,
        *,
        role: Role = Role.MEMBER,
        on_text: TextCallback | None = None,
        replay: bool = False,
        unrecorded: list[tuple[str, str]] | None = None,
    ) -> tuple[list[Content], list[ActionResult]]:
        """Stage 8: run the chosen actions; a bounded number of further steps when an
        action asks to continue (streamed to ``on_text`` too, after a blank line).
        Returns the contents to send and every result.

        Each call runs with its idempotency key; its outcome is recorded when it
        completes, and a replay reuses a recorded outcome instead of running it again.
        With ``unrecorded``, the outcome of the last call (nothing runs after it) is
        appended there instead, for :meth:`remember` to write with the reply.
        """
        contents: list[Content] = []
        results: list[ActionResult] = []
        for step in range(self.settings.max_action_steps):
            step_results: list[ActionResult] = []
            last_call: list[tuple[str, str]] = []
            calls = response.action_calls
            for index, call in enumerate(calls):
                defer = last_call if unrecorded is not None and index == len(calls) - 1 else None
                step_results.append(
                    await self._run_call(
                        message, state, call, role, step, index, replay=replay, defer=defer
                    )
                )
            results.extend(step_results)
            text = self._speaker_label.sub("", response.text, count=1).strip()
            limit = self.settings.max_response_chars
            if len(text) > limit:
                logger.warning(
                    "Model answer of %d characters cut to %d (CARRIER_MAX_RESPONSE_CHARS)",
                    len(text),
                    limit,
                )
                text = text[:limit].rstrip() + " …"
            if text and not any(r.suppress_reply for r in step_results):
                contents.append(
                    Content(
                        text=text,
                        thought=response.thought,
                        actions=[c.name for c in response.action_calls],
                        source=message.content.source,
                        in_reply_to=message.id,
                    )
                )
            for result in step_results:
                contents.extend(result.messages)
            if (
                not any(r.continue_chain for r in step_results)
                or any(r.data.get("pending_approval") for r in step_results)  # waits
                or step + 1 == self.settings.max_action_steps
            ):
                if unrecorded is not None:
                    unrecorded.extend(last_call)
                break
            await self._steps.record_outcomes(last_call)  # before the next step's model call
            state.action_results = list(results)
            state.step = step + 1
            if self._actions and self._offers_actions():  # may depend on the step (CONTINUE)
                offered = await self._actions.offered(self._runtime, message, state, role)
                state.actions = [a.spec() for a in offered]
            response = await self._model_step(
                message,
                step + 1,
                self.compose_context(state),
                on_text=after_break(on_text, contents),
                replay=replay,
            )
        return contents, results

    async def _run_call(
        self,
        message: Memory,
        state: State,
        call: ActionCall,
        role: Role,
        step: int,
        index: int,
        *,
        replay: bool,
        defer: list[tuple[str, str]] | None = None,
    ) -> ActionResult:
        steps = self._steps if self.settings.record_steps else None
        if replay and steps is not None:
            recorded = await steps.outcome(message.id, step, index)
            if recorded is not None:
                return recorded
        key = idempotency_key(message.id, step, index)
        result = await self._actions.run(
            self._runtime, call, message, state, role, idempotency_key=key
        )
        if steps is not None:
            record = steps.outcome_record(message.id, step, index, result)
            if defer is not None:
                defer.append(record)
            else:
                await steps.record_outcomes([record])
        return result

    async def evaluate(
        self, message: Memory, state: State, responses: list[Memory]
    ) -> list[EvaluatorResult]:
        """Stage 9: evaluators run concurrently, each under its timeout."""
        if not self._evaluators:
            return []
        return await run_evaluators(self._runtime, self._evaluators, message, state, responses)

    def _response_memory(
        self, message: Memory, content: Content, index: int, *, ignored: bool = False
    ) -> Memory:
        suffix = "" if index == 0 else f"-{index}"
        metadata: dict[str, Any] = {"ignored": True} if ignored else {}
        return Memory(
            id=f"{message.id}-{self.agent_id}{suffix}",
            agent_id=self.agent_id,
            entity_id=self.agent_id,
            room_id=message.room_id,
            world_id=message.world_id,
            content=content,
            metadata=metadata,
        )

    async def remember(
        self,
        message: Memory,
        contents: list[Content],
        *,
        ignored: bool = False,
        records: Sequence[tuple[str, str]] = (),
        release: Lease | None = None,
    ) -> list[Memory]:
        """Stage 10: store the responses; the first has id ``"{message_id}-{agent_id}"``,
        which marks the message answered, so a replay never answers twice. ``records``
        (recorded steps' cache entries, from :meth:`act`) are added with it, in the same
        store call; the lease to ``release`` is deleted with the last."""
        started = time.perf_counter()
        if not contents:
            contents, ignored = [Content(actions=["IGNORE"])], True
        stored = []
        last = len(contents) - 1
        for index, content in enumerate(contents):
            memory = self._response_memory(message, content, index, ignored=ignored)
            entries = dict(records) if index == 0 else {}
            if index == last and release is not None:
                write = self.store.create_memory_with_cache
                created = await release.release_with(
                    functools.partial(write, memory, entries, ttl_s=RECORD_TTL_S)
                )
            elif entries:
                created = await self.store.create_memory_with_cache(
                    memory, entries, ttl_s=RECORD_TTL_S
                )
            else:
                created = await self.store.create_memory(memory)
            if created:
                stored.append(memory)
        if not ignored:
            await self.emit(
                EventType.MESSAGE_SENT,
                message,
                (time.perf_counter() - started) * 1000,
                responses=len(stored),
            )
        return [] if ignored else stored


def _require_structured(response: ModelResponse) -> str | None:
    """A structured-output request needs an object: take the backend's, else parse the
    text as JSON; otherwise the response is unusable and the next model is tried."""
    if response.structured is None:
        try:
            response.structured = json_object(response.text)
        except ValueError:
            return "the response holds no JSON object for the requested schema"
    return None
