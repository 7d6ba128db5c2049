"""The ``carrier`` command: chat, run, plugins, character validate; plugins add more.

Built on argparse so ``carrier --help`` imports little: plugin modules are loaded
to list their commands, but a command's factory runs only when it is invoked.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from carrier import __version__
from carrier.errors import CarrierError

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime

__all__ = ["main"]

_BUILTIN = {"chat", "forget", "run", "start", "plugins", "character", "test"}

#: 128 + SIGPIPE: what a shell reports for a Unix tool whose reader went away.
EXIT_BROKEN_PIPE = 141

#: Shown by ``carrier --help``; docs/cli.md says the same.
EXIT_CODES = """\
exit status:
  0    success
  1    the command failed: an invalid character file, setting or model/store name, a
       piped 'chat' message the agent could not answer, a failed 'carrier test' check,
       'carrier run' with a model that cannot choose actions (the message names what
       to configure), 'carrier forget' not confirmed, 'carrier plugins' when a
       plugin failed to load (the others still load; the listing shows its error),
       or 'carrier serve' when it cannot listen on its address (the port is taken)
  2    usage error (unknown command or option, bad argument), or the plugins could
       not be set up (CARRIER_PLUGINS names one that is not installed, two plugins
       register one name, a hook implementation is broken)
  3    'carrier run': the goal was not reached within --steps
  130  interrupted (Ctrl-C)
  141  standard output was closed early (a broken pipe, as in 'carrier plugins | head')
A plugin's command returns its own status (1 when it raises a Carrier error).
"""

_REGISTRIES = (
    "models",
    "stores",
    "actions",
    "action_sources",
    "providers",
    "evaluators",
    "executors",
    "clients",
    "commands",
)


def _parser(host: PluginHost) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carrier",
        description="Run and inspect Carrier agents.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"carrier {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log to stderr.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from carrier.chatting import add_commands

    add_commands(commands)  # chat, forget

    run = commands.add_parser("run", help="Work toward a goal autonomously.")
    run.add_argument("--goal", required=True, help="What the agent should achieve.")
    run.add_argument("--character", "-c", help="Character file.")
    run.add_argument("--steps", type=int, default=10, help="Step budget (default 10).")
    run.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="Schedule the goal to be worked every SECONDS instead (a 'goal' task).",
    )
    run.add_argument("--cron", help="Schedule the goal on a cron expression instead.")

    start = commands.add_parser(
        "start",
        help="Run every enabled client (Telegram, ...) for the agents until Ctrl-C.",
        description="Open the agents and run each registered client they enable (a client "
        "is enabled when its token is configured and the character's 'clients' list, if "
        "any, names it); SIGINT or SIGTERM stops them gracefully.",
    )
    start.add_argument(
        "characters",
        nargs="*",
        metavar="CHARACTER",
        help="Character files (default: CARRIER_CHARACTER or the builtin 'Nova').",
    )
    start.add_argument(
        "--clients", help="Comma-separated client names to run (default: every enabled one)."
    )

    plugins = commands.add_parser(
        "plugins",
        help="List plugins, what they register and load errors; 'plugins new' starts one.",
        description="List plugins, what they register and load errors. Exits 1 when a "
        "plugin failed to load.",
    )
    plugins_commands = plugins.add_subparsers(dest="plugins_command", metavar="SUBCOMMAND")
    new = plugins_commands.add_parser(
        "new",
        help="Write a new plugin distribution, ready to install and test.",
        description="Write carrier-plugin-NAME/: a src-layout distribution with its entry "
        "point, settings, tests (using carrier.testing), a README and a CI workflow.",
    )
    new.add_argument(
        "name",
        metavar="NAME",
        type=_plugin_name,
        help="Plugin name: lower-case letters, digits and '_', e.g. 'weather'.",
    )
    new.add_argument(
        "--kind",
        choices=("tool", "model", "store", "client"),
        default="tool",
        help="tool: an action, a provider, an evaluator, settings and a command (default); "
        "model: a model backend; store: a memory store; client: a platform client.",
    )
    new.add_argument(
        "--directory",
        "-d",
        default=".",
        help="Where to create carrier-plugin-NAME/ (default: the current directory).",
    )

    test = commands.add_parser(
        "test",
        help="Run scenario files: conversations and what each turn must show.",
        description="Run each scenario (docs/scenarios.md) on a fresh in-memory store; "
        "print a table of turns; exit 1 when a check fails.",
    )
    test.add_argument("files", nargs="+", metavar="FILE", help="Scenario files (YAML).")
    test.add_argument("--junit-xml", metavar="PATH", help="Also write JUnit XML to PATH.")
    test.add_argument(
        "--model", metavar="SPEC", help="Run every scenario on this (live) model instead."
    )
    test.add_argument(
        "--record", action="store_true", help="Write the scenarios' cassettes from --model."
    )
    test.add_argument(
        "--judge",
        metavar="SPEC",
        help="The model that decides 'judge' checks (default: the scenario's 'judge:', "
        "else --model).",
    )

    character = commands.add_parser("character", help="Work with character files.")
    character_commands = character.add_subparsers(dest="character_command", required=True)
    validate = character_commands.add_parser("validate", help="Validate a character file.")
    validate.add_argument("file")

    for entry in host.commands:
        if entry.name not in _BUILTIN:
            commands.add_parser(entry.name, help=entry.description, add_help=False)
    return parser


def _plugin_name(value: str) -> str:
    from carrier.scaffold import check_name

    try:
        return check_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None, *, host: PluginHost | None = None) -> int:
    """Entry point of the ``carrier`` command; returns the exit status.

    A reader that goes away (``carrier plugins | head -3``) ends the command quietly
    with status 141, as Unix tools do; every status is in :data:`EXIT_CODES`.

    Args:
        argv: The arguments after ``carrier``; ``sys.argv[1:]`` when omitted.
        host: Run against this host instead of loading the installed plugins
            (``carrier.testing``'s ``carrier_cli`` fixture passes its ``host``).
    """
    try:
        status = _main(list(sys.argv[1:] if argv is None else argv), host)
        sys.stdout.flush()  # a closed pipe shows here, not while the interpreter exits
    except BrokenPipeError:
        # Python's documented recipe: point stdout at devnull, so that the flush at
        # exit cannot fail again ("Exception ignored ... BrokenPipeError").
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status


def _main(args_list: list[str], host: PluginHost | None) -> int:
    # -v goes anywhere (carrier -v chat, carrier chat -v, carrier serve -v): taken out
    # here, then given to the builtin commands' parser in front
    verbose = "-v" in args_list or "--verbose" in args_list
    args_list = [a for a in args_list if a not in ("-v", "--verbose")]
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="carrier: %(levelname)s: %(message)s",
    )
    try:
        if host is None:
            from carrier.host import PluginHost

            host = PluginHost()
    except CarrierError as exc:
        print(f"carrier: {exc}", file=sys.stderr)
        return 2
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command is not None and command in host.commands and command not in _BUILTIN:
        return _run_plugin_command(host, command, args_list)
    parser = _parser(host)
    args = parser.parse_args(["-v", *args_list] if verbose else args_list)
    try:
        if args.command in ("chat", "forget"):
            import asyncio

            from carrier.chatting import chat, forget_command

            return asyncio.run((chat if args.command == "chat" else forget_command)(host, args))
        if args.command == "run":
            import asyncio

            return asyncio.run(_run_goal(host, args))
        if args.command == "start":
            import asyncio

            from carrier.starting import start

            only = [c.strip() for c in args.clients.split(",")] if args.clients else None
            return asyncio.run(start(host, args.characters, only=only))
        if args.command == "plugins" and args.plugins_command == "new":
            return _new_plugin(args)
        if args.command == "plugins":
            return _plugins(host)
        if args.command == "character":
            return _validate_character(host, args.file)
        if args.command == "test":
            import asyncio

            from carrier.scenarios import run_files

            return asyncio.run(
                run_files(
                    host,
                    args.files,
                    live=args.model,
                    record=args.record,
                    junit_xml=args.junit_xml,
                    judge=args.judge,
                )
            )
    except CarrierError as exc:
        print(f"carrier: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 0


def _run_plugin_command(host: PluginHost, name: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"carrier {name}", description=host.commands.entry(name).description
    )
    try:
        command = host.commands.create(name)
        command.configure(parser)
        rest = list(argv)
        rest.remove(name)
        args = parser.parse_args(rest)
        outcome = command.run(args, host)
        if inspect.isawaitable(outcome):
            awaitable = outcome

            async def wait() -> int:
                return await awaitable

            import asyncio

            return int(asyncio.run(wait()) or 0)
        return int(outcome or 0)
    except CarrierError as exc:
        print(f"carrier {name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _runtime(host: PluginHost, character: str | None) -> AgentRuntime:
    from carrier.runtime import AgentRuntime

    return AgentRuntime(character, host=host)


async def _run_goal(host: PluginHost, args: argparse.Namespace) -> int:
    from carrier.types import Goal, Reply, Role

    async with _runtime(host, args.character) as runtime:
        if args.every is not None or args.cron is not None:
            # the scheduler (carrier start, carrier tasks run, carrier worker) works it
            task = await runtime.tasks.schedule(
                args.goal[:80],
                worker="goal",
                interval_s=args.every,
                cron=args.cron,
                payload={"text": args.goal, "steps": args.steps},
                created_by="operator",
            )
            print(f"Scheduled task {task.id}: {args.goal}")
            return 0

        async def on_step(step: int, reply: Reply, goal: Goal) -> None:
            done = sum(o.completed for o in goal.objectives)
            actions = ", ".join(r.name for r in reply.action_results) or "no action"
            print(f"step {step}: {actions}; {done}/{len(goal.objectives)} objectives done")
            for text in reply.texts:
                print(f"  {runtime.character.name}: {text}")

        # the operator at the terminal owns the agent: their goal acts as OWNER
        run = await runtime.run_autonomous(
            args.goal, max_steps=args.steps, on_step=on_step, role=Role.OWNER
        )
        for objective in run.goal.objectives:
            print(f"[{'x' if objective.completed else ' '}] {objective.description}")
        print(f"goal {run.goal.status.value}: {run.goal.name}")
        return 0 if run.completed else 3


def _plugins(host: PluginHost) -> int:
    """Print each plugin with its hooks (or load error), then each registry's entries
    with their descriptions; 1 when a plugin failed to load."""
    for info in host.plugin_list():
        where = f"{info.distribution} {info.version}" if info.distribution else "(in-process)"
        print(f"{info.name}  {where}")
        if info.error:
            print(f"    LOAD ERROR: {info.error}")
        elif info.hooks:
            print(f"    hooks: {', '.join(info.hooks)}")
    for kind in _REGISTRIES:
        registry = getattr(host, kind)
        entries = sorted(registry, key=lambda entry: entry.name)
        if not entries:
            continue
        print(f"{kind}:")
        width = max(len(entry.name) for entry in entries)
        for entry in entries:
            description = entry.description or "(no description)"
            if getattr(entry.factory, "needs_capable_model", False):
                description += " (off with a small model, such as the default local one)"
            print(f"  {entry.name:<{width}}  {description}  [{entry.plugin}]")
    if host.load_errors:
        count = len(host.load_errors)
        plugins = "plugin" if count == 1 else "plugins"
        print(
            f"carrier: exit status 1: {count} {plugins} failed to load (LOAD ERROR above) "
            f"and {'was' if count == 1 else 'were'} skipped; the others are loaded.",
            file=sys.stderr,
        )
        return 1
    return 0


def _new_plugin(args: argparse.Namespace) -> int:
    """``carrier plugins new``: the scaffold is imported only when it runs."""
    from pathlib import Path

    from carrier.scaffold import create_plugin

    root = create_plugin(args.name, kind=args.kind, directory=Path(args.directory))
    print(f"Created {root}")
    print("Next:")
    print(f"  cd {root}")
    print("  python -m pip install -e . pytest pytest-asyncio")
    print("  python -m pytest")
    return 0


def _validate_character(host: PluginHost, file: str) -> int:
    """Exit 0 when the file is valid, printing its warnings (unsupported ElizaOS
    plugins, say) to stderr and in the JSON summary; ``CharacterError`` otherwise."""
    import json
    import warnings

    from carrier.character import check_plugins, load_character
    from carrier.errors import CarrierWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CarrierWarning)
        character = load_character(file)
        check_plugins(character, host.plugins, source=file)
    notes = [str(w.message) for w in caught]
    for note in notes:
        print(f"carrier: warning: {note}", file=sys.stderr)
    summary = {"file": file, "name": character.name, "id": character.id, "valid": True}
    print(json.dumps({**summary, "warnings": notes}))
    return 0
