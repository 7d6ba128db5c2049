"""``carrier knowledge add PATH``: ingest more knowledge for an agent."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from carrier.protocols import Command

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["KnowledgeCommand"]


class KnowledgeCommand(Command):
    """``carrier knowledge add PATH...``: chunk, embed and store files or folders."""

    help = "Add knowledge documents (.md/.txt files or folders) to an agent."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="knowledge_command", required=True)
        add = actions.add_parser("add", help="Ingest files or folders (idempotent).")
        add.add_argument("paths", nargs="+", type=Path, help="Files or folders to ingest.")
        add.add_argument("--character", "-c", help="Character file (default: CARRIER_CHARACTER).")
        add.add_argument("--shared", action="store_true", help="Mark the documents shared.")

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        import sys

        from carrier.runtime import AgentRuntime
        from carrier_plugin_bootstrap.knowledge import IngestReport, ingest_path

        status = 0
        async with AgentRuntime(args.character, host=host) as runtime:
            if await runtime.embed(["probe"]) is None:
                print(
                    "carrier knowledge: no embedding model is configured, so the documents "
                    "are stored but cannot be retrieved; set CARRIER_MODEL_EMBEDDING.",
                    file=sys.stderr,
                )
            total = IngestReport()
            for path in args.paths:
                try:
                    report = await ingest_path(runtime, path, shared=args.shared)
                except FileNotFoundError as exc:
                    print(f"carrier knowledge: {exc}", file=sys.stderr)
                    status = 1
                    continue
                for source in report.added:
                    print(f"added {source}")
                for source in report.unchanged:
                    print(f"unchanged {source}")
                total.merge(report)
            print(f"{runtime.character.name}: {total}")
        return status
