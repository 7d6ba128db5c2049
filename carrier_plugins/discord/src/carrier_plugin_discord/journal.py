"""The journal of messages that need an answer: ``Journal``, a base of ``BotService``.

A message that needs an answer is journaled in plugin state (``inbox:{message id}``)
before its turn and cleared once the answer is in the outbox; an entry a crash left is
handled again at the next start (the kernel returns the stored answer if there is one;
the outbox's ``ref`` keeps it from being sent twice). A ``/ask`` is journaled by the
interaction's id (:mod:`.interactions`), and ``claim`` remembers each interaction so a
replayed ``INTERACTION_CREATE`` is answered once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carrier.errors import InputError
from carrier.types import IncomingMessage
from carrier_plugin_discord.delivery import Delivery
from carrier_plugin_discord.sending import expired, typing

if TYPE_CHECKING:
    from carrier.lanes import Lanes
    from carrier.plugin_state import PluginState

__all__ = ["INTERACTION_CLAIM_TTL_S", "JOURNAL_TTL_S", "Journal", "Journaled"]

logger = logging.getLogger("carrier_plugin_discord")

#: Journal entries of messages accepted but not answered are kept this long.
JOURNAL_TTL_S = 24 * 3600.0
#: An interaction id is remembered this long, so a replayed ``INTERACTION_CREATE`` is
#: ignored (Discord takes no answer to an interaction after 15 minutes anyway).
INTERACTION_CLAIM_TTL_S = 3600.0


@dataclass(frozen=True, slots=True)
class Journaled:
    """A message journaled for an answer: a ``/ask``, or one an earlier run left.

    ``entry`` holds the ``incoming`` message (JSON), its ``channel_id``, and where the
    answer goes: ``reply_to`` (a channel message) or ``followup`` (an interaction's, see
    :func:`~carrier_plugin_discord.sending.followup_target`)."""

    key: str
    entry: dict[str, Any]


class Journal(Delivery):
    """Journals messages that need an answer and answers them; the base of ``BotService``."""

    _state: PluginState
    lanes: Lanes

    async def journal(self, incoming: IncomingMessage, **where: Any) -> Journaled:
        """Record that ``incoming`` needs an answer, sent ``where`` says (``channel_id``,
        and ``reply_to`` or ``followup``), before its turn: a crash leaves the entry for
        the next start."""
        entry = {"incoming": incoming.model_dump(mode="json"), **where}
        item = Journaled(f"inbox:{incoming.message_id}", entry)
        await self._state.set(item.key, entry, ttl_s=JOURNAL_TTL_S)
        return item

    async def unjournal(self, item: Journaled) -> None:
        """Drop a journal entry whose message will not be answered."""
        await self._state.delete(item.key)

    async def claim(self, interaction_id: int) -> bool:
        """Whether this is the first time ``INTERACTION_CREATE`` brings this interaction
        (a gateway replay brings it again: it is answered once)."""
        key = f"interaction:{interaction_id}"
        return await self._state.add(key, True, ttl_s=INTERACTION_CLAIM_TTL_S)

    async def _respond(self, incoming: IncomingMessage, entry: dict[str, Any]) -> bool:
        """Handle a message that needs an answer and put the answer in the outbox; whether
        its journal entry may go (``False``: the agent failed; the next start retries)."""
        channel_id = int(entry["channel_id"])
        target: dict[str, Any] | None = entry.get("followup")
        reply_to = entry.get("reply_to")
        ref = incoming.message_id
        try:
            if target is None:
                interval_s = self.settings.typing_interval_s
                async with typing(self.http, channel_id, interval_s=interval_s):
                    reply = await self.runtime.handle(incoming)
                if reply.error is not None:
                    return False
            elif expired(target):
                logger.warning(
                    "Discord: %s was not answered within the 15 minutes its interaction "
                    "token lives (dropped)",
                    incoming.message_id,
                )
                return True
            else:  # the deferred interaction shows "thinking…"; a failure is answered too
                reply = await self.runtime.handle(incoming)
        except InputError as exc:  # refused, nothing stored: the sender is told why
            logger.info("Discord: message %s refused: %s", ref, exc)
            await self.refused(
                str(exc),
                channel_id,
                reply_to=None if reply_to is None else int(reply_to),
                ref=ref,
                followup=target,
            )
            return True
        if reply.in_progress:
            return True
        if reply.duplicate and ref is not None and await self.sender.outbox.recorded(ref):
            return True  # a replayed event: its answer is in the outbox already
        await self.answer(
            reply,
            channel_id,
            reply_to=None if reply_to is None else int(reply_to),
            ref=ref,
            followup=target,
        )
        return True

    async def recover_journal(self) -> int:
        """Queue the messages an earlier run accepted but did not answer."""
        entries = await self._state.items("inbox:")
        for key, entry in entries:
            self.answer_later(Journaled(key, entry))
        if entries:
            logger.warning("Discord: finishing %d message(s) a previous run left", len(entries))
        return len(entries)

    def answer_later(self, item: Journaled) -> None:
        """Queue a journaled message on its channel's lane."""
        self.lanes.submit(str(item.entry["channel_id"]), item)

    async def _answer_journaled(self, item: Journaled) -> None:
        incoming = IncomingMessage.model_validate(item.entry["incoming"])
        if await self._respond(incoming, item.entry):
            await self._state.delete(item.key)
