"""``PairingCommand``: ``carrier <client> approve CODE`` and ``carrier <client> pending``,
the operator's side of a chat client's direct-message pairing (:mod:`carrier.pairing`).
A client's command subclasses it with its namespace and platform name."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from carrier.protocols import Command

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["PairingCommand"]


class PairingCommand(Command):
    """Approve users who asked to talk to an agent directly (``dm_policy=pairing``).

    Attributes:
        namespace: The client's plugin-state namespace and command name (``"telegram"``).
        platform: Its name in messages (``"Telegram"``).
    """

    namespace: str = ""
    platform: str = ""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="pairing_command", required=True)
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

        async with AgentRuntime(args.character, host=host, warm_up=False) as runtime:
            book = PairingBook(runtime.plugin_state(self.namespace))
            if args.pairing_command == "pending":
                for code, waiting in await book.waiting():
                    name, user = waiting.get("name"), waiting.get("user_id")
                    print(f"{code}  {name} ({self.platform} user {user})")
                return 0
            entry = await book.approve(args.code)
            if entry is None:
                print(
                    f"carrier {self.namespace}: no waiting pairing code {args.code!r} for "
                    f"{runtime.character.name} (codes expire after an hour and work once); "
                    f"'carrier {self.namespace} pending' lists them.",
                    file=sys.stderr,
                )
                return 1
            print(
                f"Approved {entry.get('name')} ({self.platform} user {entry.get('user_id')}) "
                f"to talk to {runtime.character.name}."
            )
            return 0
