"""``carrier telegram approve CODE`` and ``carrier telegram pending``."""

from __future__ import annotations

from carrier.pairing_command import PairingCommand

__all__ = ["TelegramCommand"]


class TelegramCommand(PairingCommand):
    """Approve users who asked to talk to an agent on Telegram directly (``dm_policy=pairing``)."""

    namespace = "telegram"
    platform = "Telegram"
    help = "Telegram: approve a direct-message pairing code, list waiting codes."
