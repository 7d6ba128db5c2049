"""``carrier approvals`` and ``carrier tasks``: the kernel's commands for approvals and
scheduled tasks (registered by the builtin plugin; docs/approvals.md, docs/tasks.md).

Whoever runs the CLI can open the agents' store, so acts as the operator: an
approval decided here is decided with the OWNER role, by ``--by`` (default
``operator``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from carrier.errors import InputError
from carrier.protocols import Command
from carrier.types import Role

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["ApprovalsCommand", "TasksCommand"]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


class ApprovalsCommand(Command):
    """``carrier approvals list|approve|reject``."""

    help = "List, approve or reject actions waiting for a person's approval."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--character", "-c", help="Character file (default: the builtin).")
        sub = parser.add_subparsers(dest="approvals_command", required=True)
        listing = sub.add_parser("list", help="Pending approvals (all with --all).")
        listing.add_argument("--all", action="store_true", help="Decided ones too.")
        listing.add_argument("--json", action="store_true", help="One JSON object a line.")
        approve = sub.add_parser("approve", help="Approve; the action runs once.")
        approve.add_argument("id")
        approve.add_argument(
            "--arguments", help="Edited arguments as a JSON object (validated again)."
        )
        approve.add_argument("--by", default="operator", help="Who decides (default operator).")
        reject = sub.add_parser("reject", help="Reject with a reason.")
        reject.add_argument("id")
        reject.add_argument("--reason", default="", help="Why (the model is told).")
        reject.add_argument("--by", default="operator", help="Who decides (default operator).")

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        from carrier.runtime import AgentRuntime

        async with AgentRuntime(args.character, host=host) as runtime:
            approvals = runtime.approvals
            if args.approvals_command == "list":
                found = await approvals.list(pending_only=not args.all)
                for approval in found:
                    if args.json:
                        print(json.dumps(approval.model_dump(mode="json")))
                    else:
                        print(
                            f"{approval.id}  {approval.status:<8}  {approval.action}  "
                            f"{json.dumps(approval.arguments)}  room={approval.room_id}  "
                            f"by={approval.requester_id}  needs={approval.approver_role}  "
                            f"expires={_when(approval.expires_at)}"
                        )
                if not found and not args.json:
                    print("No approvals.", file=sys.stderr)
                return 0
            arguments: dict[str, Any] | None = None
            if getattr(args, "arguments", None):
                try:
                    arguments = json.loads(args.arguments)
                except json.JSONDecodeError as exc:
                    raise InputError(f"--arguments is not JSON: {exc}.") from None
                if not isinstance(arguments, dict):
                    raise InputError("--arguments must be a JSON object.")
            decided = await approvals.decide(
                args.id,
                approve=args.approvals_command == "approve",
                by=args.by,
                role=Role.OWNER,
                arguments=arguments,
                reason=getattr(args, "reason", ""),
            )
            print(f"Approval {decided.id}: {decided.status}")
            answer = await runtime.store.get_memory(decided.response_id)
            if answer is not None and answer.content.text:
                print(f"{runtime.character.name}: {answer.content.text}")
        return 0


class TasksCommand(Command):
    """``carrier tasks list|run|cancel``."""

    help = "List scheduled tasks, run the scheduler, or cancel a task."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="tasks_command", required=True)
        listing = sub.add_parser("list", help="Every task: status, next run, attempts.")
        listing.add_argument("--character", "-c", help="Character file.")
        listing.add_argument("--json", action="store_true", help="One JSON object a line.")
        cancel = sub.add_parser("cancel", help="Delete a task.")
        cancel.add_argument("id")
        cancel.add_argument("--character", "-c", help="Character file.")
        run = sub.add_parser("run", help="Run due tasks until Ctrl-C (the embedded scheduler).")
        self.add_characters_argument(run)
        run.add_argument("--tick", type=float, default=0.2, help="Seconds between polls.")

    async def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        from carrier.runtime import AgentRuntime, open_agents

        if args.tasks_command == "run":
            from carrier.tasks import run_scheduler

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
            async with open_agents(host, args.characters) as runtimes:
                names = ", ".join(r.character.name for r in runtimes)
                print(f"carrier tasks run: scheduling for {names}", file=sys.stderr, flush=True)
                await run_scheduler(runtimes, stop, tick_s=args.tick)
            return 0
        async with AgentRuntime(args.character, host=host, warm_up=False) as runtime:
            if args.tasks_command == "cancel":
                if not await runtime.tasks.cancel(args.id):
                    print(f"No task {args.id!r}.", file=sys.stderr)
                    return 1
                return 0
            tasks = await runtime.tasks.list()
            for task in tasks:
                if args.json:
                    print(json.dumps(task.model_dump(mode="json")))
                    continue
                every = (
                    f"every {task.interval_s:g}s"
                    if task.interval_s
                    else (f"cron {task.cron!r}" if task.cron else "once")
                )
                error = f"  error={task.last_error}" if task.last_error else ""
                print(
                    f"{task.id}  {task.status:<9}  {task.name}  worker={task.worker}  "
                    f"{every}  next={_when(task.due_at)}  runs={task.runs}  "
                    f"attempts={task.attempts}/{task.max_attempts}{error}"
                )
            if not tasks and not args.json:
                print("No tasks.", file=sys.stderr)
        return 0
