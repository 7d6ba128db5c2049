"""``carrier serve``: the HTTP plugin's command (imported when it runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import carrier

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["ServeCommand"]


class ServeCommand(carrier.Command):
    """``carrier serve [CHARACTER ...]``: host one or many agents in one process."""

    help = "Serve agents over HTTP."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments."""
        self.add_characters_argument(parser)
        parser.add_argument("--host", help="Address to bind (default: CARRIER_HTTP_HOST).")
        parser.add_argument("--port", type=int, help="Port (default: CARRIER_HTTP_PORT).")

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        """Start the agents and serve them until interrupted."""
        from carrier_plugin_http.server import serve

        return await serve(host, args.characters, bind_host=args.host, port=args.port)
