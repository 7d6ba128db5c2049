"""How a prompt is laid out so that model servers reuse its prefix (prompt caches).

Every request ``compose_context`` builds has two parts:

1. **The stable prefix**: the system prompt (the persona, then the sections of the
   providers marked ``stable``, such as the catalogue of actions) and the room's
   history as chat turns. It changes rarely: when the character or the offered
   actions change, and when the history window drops a block.
2. **The per-message turn**: one last user turn holding everything that changes from
   one message to the next (the other providers' sections, such as the time; the
   retrieved facts and knowledge, open goals and action results as labelled
   ``<data>`` sections), then the new message.

The history is a window per room (:class:`HistoryWindow`) that only grows, one
exchange at a time, until it is full (it would hold more messages than the runtime
fetches, or no longer fits the token budget); then it drops its **older half** at
once. Between two drops, each request begins with the whole stable prefix of the one
before it, byte for byte, so llama.cpp's slot cache, OpenAI's automatic prompt caching
and Anthropic's cache breakpoints (``request.metadata["prefix_messages"]`` says where
the stable prefix ends) reuse it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from carrier.prompts import DATA_NOTICE, TurnCache, character_system_prompt, data_section
from carrier.types import ChatMessage, ModelRequest

if TYPE_CHECKING:
    from carrier.character import Character
    from carrier.types import Memory, State

__all__ = ["HistoryWindow", "compose_request", "shorten_answer"]


class HistoryWindow:
    """Where each room's history window starts: the id of its oldest message.

    ``limit`` is how many messages the runtime fetches for the history
    (``CARRIER_HISTORY_LIMIT``): a room with that many is full, and a window whose
    first message is no longer among them drops its older half. Keeps ``size`` rooms;
    a room it no longer knows starts a new window (one more drop, never a wrong one).
    """

    def __init__(self, limit: int | None = None, size: int = 4096) -> None:
        self.limit = limit
        self.size = size
        self.drops = 0
        self._starts: dict[str, str] = {}

    def start(
        self,
        room_id: str,
        ids: list[str],
        costs: list[int],
        budget: int,
        openers: list[bool] | None = None,
    ) -> int:
        """The index in ``ids`` (oldest first, the room's history without the new
        message) of the first message to send, within ``budget`` tokens (``costs`` each).

        ``openers`` says which messages may open a window (not the agent's own): a
        drop moves on to the next one, so a window never begins with an answer whose
        question it left out. That is what chat templates expect, and it keeps
        llama.cpp's chunk reuse on the kept half (a window opening with an answer the
        dropped half also holds, word for word, made it re-read the whole history).
        """
        known = self._starts.pop(room_id, None)
        if known is not None and known in ids:
            start = ids.index(known)
        elif known is None and (self.limit is None or len(ids) + 1 < self.limit):
            start = 0  # a room the window never saw, not yet full: all of it
        else:  # the window's first message fell out of the fetched history: it is full
            start = len(ids) // 2
            self.drops += 1
        if start:  # a window that dropped a block opens at a user's message
            start = _opener(openers, start)
        total = sum(costs[start:])
        while start < len(ids) and total > budget:  # over budget: drop the older half
            cut = _opener(openers, start + max(1, (len(ids) - start) // 2))
            total -= sum(costs[start:cut])
            start = cut
            self.drops += 1
        if start < len(ids):
            self._starts[room_id] = ids[start]
            if len(self._starts) > self.size:
                del self._starts[next(iter(self._starts))]
        return start


def _opener(openers: list[bool] | None, start: int) -> int:
    """``start``, or the first index after it that may open a window (if any does)."""
    if openers is None:
        return start
    return next((i for i in range(start, len(openers)) if openers[i]), start)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def shorten_answer(text: str, limit: int = 160) -> str:
    """An earlier answer as a small model gets it back: its first sentence, at most
    ``limit`` characters (cut at a word). Nothing marks the cut: a small model copies
    any marker into its own answers (the 135M model ended 25 answers in 45 with the
    " …" that once did)."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    if len(first) <= limit:
        return first
    return (first[:limit].rsplit(" ", 1)[0] or first[:limit]).rstrip()


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _per_message_data(state: State, shown: Collection[str] = ()) -> list[str]:
    """The retrieved facts and knowledge, open goals and action results, as data; a
    fact that repeats a message of the history sent (``shown``) is left out."""
    data: list[str] = []
    facts = [s.memory.content.text for s in state.facts]
    said = "\x00".join(shown) if facts else ""  # one search, whatever the history's length
    facts = [f for f in facts if f not in said]
    if facts:
        data.append(data_section("facts", "Things you know:\n" + _bullets(facts)))
    if state.knowledge:
        knowledge = _bullets(s.memory.content.text for s in state.knowledge)
        data.append(data_section("knowledge", "Knowledge:\n" + knowledge))
    open_goals = [g for g in state.goals if not g.finished]
    if open_goals:
        lines = []
        for goal in open_goals:
            lines.append(f"Goal {goal.id}: {goal.name}")
            lines.extend(
                f"  {n}. [{'x' if o.completed else ' '}] {o.description}"
                for n, o in enumerate(goal.objectives, start=1)
            )
        data.append(data_section("goals", "\n".join(lines)))
    if state.action_results:
        results = _bullets(
            f"{r.name}: {'ok' if r.success else 'failed'}: {r.text or r.error or ''}"
            for r in state.action_results
        )
        data.append(data_section("action results", "Results of the actions you took:\n" + results))
    return data


def _sections(texts: list[str], data: list[str], notice: bool = True) -> list[str]:
    if not data:
        return texts
    return [*texts, DATA_NOTICE, *data] if notice else [*texts, *data]


def compose_request(
    state: State,
    character: Character,
    *,
    persona: str | None = None,
    max_prompt_tokens: int,
    count_tokens: Callable[[str], int],
    max_tokens: int | None = None,
    turns: TurnCache | None = None,
    stable: Collection[str] = (),
    window: HistoryWindow | None = None,
    short_answers: bool = False,
) -> ModelRequest:
    """The request for ``state``, laid out as the module describes; see
    :func:`carrier.prompts.compose_context`. With ``short_answers`` (a small model),
    the agent's earlier answers come back shortened (:func:`shorten_answer`) and the
    data sections come without :data:`~carrier.prompts.DATA_NOTICE`."""
    stable_text: list[str] = [
        persona if persona is not None else character_system_prompt(character)
    ]
    stable_data: list[str] = []
    turn_text: list[str] = []
    turn_data: list[str] = []
    for name, output in state.providers.items():
        if not output.text:
            continue
        fixed = name in stable
        if output.trusted:
            (stable_text if fixed else turn_text).append(output.text)
        else:
            section = data_section(output.label or "provider", output.text)
            (stable_data if fixed else turn_data).append(section)
    data = turn_data + _per_message_data(state)
    # a small model repeats the notice in its answers instead of heeding it: its data
    # sections keep their <data> tags, without the notice
    notice = not short_answers
    system = "\n\n".join(_sections(stable_text, stable_data, notice))

    group = state.room.type.value in ("group", "thread", "feed")
    # a speaker without a name is "Someone": never an id, never "user"
    names = {a.id: (a.names[0] if a.names else "Someone") for a in state.actors}
    # The message being answered is always the user's turn, even an autonomous step
    # that the agent wrote to itself; what changes per message comes right before it.
    last = "\n\n".join([*_sections(turn_text, data, notice), state.message.content.text])

    cache = turns if turns is not None else TurnCache(count_tokens)
    budget = max_prompt_tokens - count_tokens(system) - count_tokens(last) - (max_tokens or 0)
    current_id, agent_id = state.message.id, state.agent_id

    def turn(memory: Memory) -> tuple[ChatMessage, int]:  # a memory with text
        text = memory.content.text or ""
        if memory.entity_id == agent_id:
            return cache.turn("assistant", shorten_answer(text) if short_answers else text)
        speaker = names.get(memory.entity_id, "Someone")
        return cache.turn("user", f"{speaker}: {text}" if group else text)

    recent = state.recent_messages  # the message being answered comes last (if at all)
    if recent and recent[-1].id == current_id:
        earlier = recent[:-1]  # no memory read: a long window costs its new messages
    else:
        earlier = [m for m in recent if m.id != current_id]
    # what else shapes a turn: whose answers are the agent's, how they read, who speaks
    shape = (agent_id, short_answers, group, tuple(sorted(names.items())) if group else ())
    built = cache.rooms.build(state.room.id, shape, earlier, turn)
    openers = [message.role != "assistant" for message in built.turns]
    start = (window or HistoryWindow()).start(
        state.room.id, built.ids, built.costs, budget, openers
    )
    history = built.turns[start:]
    if state.facts:  # facts the history already shows are left out (a shorter turn)
        data = turn_data + _per_message_data(state, built.texts[start:])
        last = "\n\n".join([*_sections(turn_text, data, notice), state.message.content.text])
    current = ChatMessage(role="user", content=last)
    # A reply is one turn: stop where a model starts writing someone's next line.
    speakers = {state.agent_name, "User", *names.values()}
    return ModelRequest(
        system=system,
        messages=[*history, current],
        actions=state.actions,
        max_tokens=max_tokens,
        stop=sorted(f"\n{name}:" for name in speakers if name),
        metadata={
            "room_id": state.room.id,
            "message_id": state.message.id,
            "step": state.step,
            # the system prompt and this many messages are the stable prefix
            "prefix_messages": len(history),
            # the memories they show, oldest first (a backend may check continuity)
            "history_ids": built.ids[start:],
            # where the message itself starts in the last turn, after its sections
            "message_offset": len(last) - len(state.message.content.text),
        },
    )
