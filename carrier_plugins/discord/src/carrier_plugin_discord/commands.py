"""``carrier discord approve CODE`` and ``carrier discord pending``."""

from __future__ import annotations

from carrier.pairing_command import PairingCommand

__all__ = ["DiscordCommand"]


class DiscordCommand(PairingCommand):
    """Approve users who asked to talk to an agent on Discord directly (``dm_policy=pairing``)."""

    namespace = "discord"
    platform = "Discord"
    help = "Discord: approve a direct-message pairing code, list waiting codes."
