"""``carrier telegram approve CODE`` and ``carrier telegram pending``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from carrier.protocols import Command

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["TelegramCommand"]


class TelegramCommand(Command):
    """Approve users who asked to talk to an agent directly (``dm_policy=pairing``)."""

    help = "Telegram: approve a direct-message pairing code, list waiting codes."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="telegram_command", required=True)
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
        from carrier.runtime import AgentRuntime
        from carrier_plugin_telegram.access import PairingBook

        async with AgentRuntime(args.character, host=host) as runtime:
            book = PairingBook(runtime.plugin_state("telegram"))
            if args.telegram_command == "pending":
                for code, waiting in await book.waiting():
                    name, user = waiting.get("name"), waiting.get("user_id")
                    print(f"{code}  {name} (Telegram user {user})")
                return 0
            entry = await book.approve(args.code)
            if entry is None:
                print(
                    f"carrier telegram: no waiting pairing code {args.code!r} for "
                    f"{runtime.character.name} (codes expire after an hour and work once); "
                    f"'carrier telegram pending' lists them.",
                    file=sys.stderr,
                )
                return 1
            print(
                f"Approved {entry.get('name')} (Telegram user {entry.get('user_id')}) to talk "
                f"to {runtime.character.name}."
            )
            return 0
