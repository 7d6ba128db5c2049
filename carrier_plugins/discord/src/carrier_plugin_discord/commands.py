"""``carrier discord approve CODE`` and ``carrier discord pending``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from carrier.protocols import Command

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["DiscordCommand"]


class DiscordCommand(Command):
    """Approve users who asked to talk to an agent directly (``dm_policy=pairing``)."""

    help = "Discord: approve a direct-message pairing code, list waiting codes."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="discord_command", required=True)
        approve = actions.add_parser("approve", help="Approve the user who was given CODE.")
        approve.add_argument("code", help="The code the bot sent the user.")
        approve.add_argument(
            "--character", "-c", help="Character file (default: CARRIER_CHARACTER)."
        )
        pending = actions.add_parser("pending", help="List codes waiting for approval.")
        pending.add_argument(
            "--character", "-c", help="Character file (default: CARRIER_CHARACTER)."
        )

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        from carrier.pairing import PairingBook
        from carrier.runtime import AgentRuntime

        async with AgentRuntime(args.character, host=host) as runtime:
            book = PairingBook(runtime.plugin_state("discord"))
            if args.discord_command == "pending":
                for code, waiting in await book.waiting():
                    print(f"{code}  {waiting.get('name')} (Discord user {waiting.get('user_id')})")
                return 0
            entry = await book.approve(args.code)
            if entry is None:
                print(
                    f"carrier discord: no waiting pairing code {args.code!r} for "
                    f"{runtime.character.name} (codes expire after an hour and work once); "
                    f"'carrier discord pending' lists them.",
                    file=sys.stderr,
                )
                return 1
            print(
                f"Approved {entry.get('name')} (Discord user {entry.get('user_id')}) to talk "
                f"to {runtime.character.name}."
            )
            return 0
