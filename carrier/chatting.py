"""``carrier chat`` and ``carrier forget``: the conversation at the terminal.

``carrier chat`` says which model answers (and, for the small default, how to switch
in one line), presents the OS user's name (or none: never the id ``user``), keeps one
room per user and agent until ``--new`` starts another, and with ``-v`` prints the
model, the store and each stage's time per message to stderr. ``carrier forget``
deletes a user's memories in the current room, or everywhere (``--all``), after a
confirmation (``--yes`` skips it).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TYPE_CHECKING, Any

import pluggy

from carrier.errors import ConfigurationError, InputError
from carrier.types import EventType, ModelClass

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.runtime import AgentRuntime
    from carrier.types import Event

__all__ = [
    "QUIT_COMMANDS",
    "SWITCH_HINT",
    "add_commands",
    "chat",
    "forget_command",
    "model_line",
    "os_user_name",
]

hookimpl = pluggy.HookimplMarker("carrier")

#: How to get a capable agent, in one line each (the README says the same).
SWITCH_HINT = (
    "For a capable agent: CARRIER_LOCAL_MODEL_PATH=/path/to/model.gguf (any GGUF chat "
    "model), or CARRIER_OPENAI_BASE_URL=http://127.0.0.1:11434/v1 CARRIER_OPENAI_MODEL=qwen2.5 "
    "(Ollama, LM Studio, llama-server, vLLM), or CARRIER_MODEL_LARGE=openai:gpt-4.1-mini "
    "CARRIER_OPENAI_API_KEY=... (or anthropic with CARRIER_ANTHROPIC_API_KEY)."
)

#: Lines that end ``carrier chat`` (any case) instead of reaching the agent; so does
#: the end of the input (Ctrl-D).
QUIT_COMMANDS = frozenset({"/quit", "/exit"})

_STAGES = (
    (EventType.MESSAGE_STORED, "store"),
    (EventType.SHOULD_RESPOND, "respond?"),
    (EventType.STATE_COMPOSED, "state"),
    (EventType.CONTEXT_COMPOSED, "context"),
    (EventType.MODEL_USED, "model"),
    (EventType.MESSAGE_SENT, "send"),
)


def os_user_name() -> str | None:
    """The name to present for the person at the terminal: the first word of the OS
    account's full name, else its login name; ``None`` for ``root``/``user`` or when
    unknown (the prompt then names no one)."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):
        return None
    full = ""
    try:
        import pwd

        full = pwd.getpwnam(login).pw_gecos.split(",")[0].strip()
    except (ImportError, KeyError):
        pass
    name = full.split()[0] if full else login
    return None if name.lower() in ("root", "user", "") else name


def model_line(runtime: AgentRuntime) -> str:
    """Which model answers, and how big it is when Carrier knows."""
    model = runtime.model(ModelClass.LARGE).primary
    if getattr(model, "small", False):
        return (
            f"{model.name}: a 135M-parameter demo model that runs anywhere offline; it "
            "answers simply and forgets easily"
        )
    return model.name


class _Timings:
    """Collects each message's stage events (``-v``); registered on the host."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def carrier_on_event(self, event: Event) -> None:
        if event.type == EventType.MODEL_WARMED:  # at start, in the background
            data = event.data
            done = "ready" if data.get("ok") else f"warm-up failed ({data.get('error')})"
            print(
                f"carrier: {data.get('model_class')} model {data.get('model')} {done} "
                f"in {event.duration_ms:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
            return
        self.events.append(event)

    def report(self, message_id: str) -> str:
        """``store 2 ms · state 9 ms · … · model 840 ms (first byte 210 ms, …)``."""
        mine = [e for e in self.events if e.message_id == message_id]
        self.events = [e for e in self.events if e.message_id != message_id]
        parts = []
        for kind, label in _STAGES:
            for event in (e for e in mine if e.type == kind):
                part = f"{label} {event.duration_ms:.0f} ms"
                if kind == EventType.MODEL_USED:
                    data = event.data
                    first = data.get("first_chunk_ms")
                    notes = [f"first byte {first:.0f} ms"] if first else []
                    notes.append(f"{data.get('input_tokens') or 0} tokens in")
                    if data.get("cache_read_input_tokens"):
                        notes.append(f"{data['cache_read_input_tokens']} from the cache")
                    part += f" ({data.get('model_class', '')}: {', '.join(notes)})"
                parts.append(part)
        return " · ".join(parts)


async def _room(runtime: AgentRuntime, args: argparse.Namespace) -> str:
    """``--room``, else this user's current CLI room (``--new`` starts another)."""
    if args.room:
        return str(args.room)
    state = runtime.plugin_state("cli")
    key = f"room:{args.user}"
    base = f"cli-{runtime.agent_id}-{args.user}"
    if getattr(args, "new", False):
        room = f"{base}-{int(time.time())}"
        await state.set(key, room)
        return room
    return str(await state.get(key) or base)


async def chat(host: PluginHost, args: argparse.Namespace) -> int:
    """``carrier chat``: 0, or 1 when a piped message could not be answered."""
    timings = _Timings() if args.verbose else None
    if timings is not None:
        host.register(timings, name="cli-timings")
    try:
        return await _chat(host, args, timings)
    finally:
        if timings is not None:
            host.unregister("cli-timings")


async def _chat(host: PluginHost, args: argparse.Namespace, timings: _Timings | None) -> int:
    import asyncio

    from carrier.runtime import AgentRuntime
    from carrier.types import IncomingMessage, Role

    interactive = sys.stdin.isatty()
    user_name = args.name if args.name is not None else os_user_name()
    async with AgentRuntime(args.character, host=host) as runtime:
        await runtime.recover_at_start()  # what a crash of an earlier run left unfinished
        room = await _room(runtime, args)
        name = runtime.character.name
        small = getattr(runtime.model(ModelClass.LARGE).primary, "small", False)
        if interactive:
            print(f"Chatting with {name}, answered by {model_line(runtime)}.")
            if small:
                print(SWITCH_HINT)
            print("New conversation: carrier chat --new. Quit: /quit or Ctrl-D.")
        if args.verbose:
            try:
                embedder = runtime.model(ModelClass.EMBEDDING).primary
                embeds = f"; embeddings {embedder.embedding_name or embedder.name}"
            except ConfigurationError:
                embeds = "; no embeddings"
            print(
                f"carrier: model {runtime.model(ModelClass.LARGE).primary.name}{embeds}; store "
                f"{runtime.store!r}; room {room}; user {args.user} ({user_name or 'no name'})",
                file=sys.stderr,
            )
            off = [
                e.name
                for e in runtime.host.evaluators
                if small and getattr(e.factory, "needs_capable_model", False)
            ]
            if off:
                print(
                    f"carrier: off with this small model: {', '.join(off)} (they need a "
                    "capable model)",
                    file=sys.stderr,
                )
        streaming = interactive and not args.no_stream
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in QUIT_COMMANDS:  # never sent to the agent
                break
            printed = False

            async def on_text(delta: str) -> None:
                nonlocal printed
                if not printed:
                    print(f"{name}> ", end="", flush=True)
                    printed = True
                print(delta, end="", flush=True)

            try:
                reply = await runtime.handle(
                    IncomingMessage(
                        text=text,
                        user_id=args.user,
                        user_name=user_name,
                        room_id=room,
                        source="cli",
                        role=Role.OWNER,
                    ),
                    on_text=on_text if streaming else None,
                )
            except InputError as exc:
                print(f"carrier: {exc}", file=sys.stderr)
                failures += 1
                continue
            if printed:
                print()
            if timings is not None:
                print(f"carrier: {timings.report(reply.message.id)}", file=sys.stderr)
            if reply.error:
                print(f"carrier: {name} could not answer: {reply.error}", file=sys.stderr)
                failures += 1
                continue
            for result in reply.action_results:
                if not result.success and not result.data.get("pending_approval"):
                    print(f"[{result.name} failed: {result.error}]", file=sys.stderr)
            if not printed:
                for answer in reply.texts:
                    print(f"{name}> {answer}" if interactive else answer, flush=True)
    # piped input: a message that could not be answered fails the command
    return 1 if failures and not interactive else 0


async def forget_command(host: PluginHost, args: argparse.Namespace) -> int:
    """``carrier forget``: 0 when deleted (or nothing to delete), 1 when not confirmed."""
    import asyncio

    from carrier.forgetting import forget
    from carrier.runtime import AgentRuntime

    async with AgentRuntime(args.character, host=host, warm_up=False) as runtime:
        room = None if args.all else await _room(runtime, args)
        where = "in every room" if room is None else f"in room {room}"
        if not args.yes:
            if not sys.stdin.isatty():
                print(
                    f"carrier: not forgetting {args.user}'s memories {where} without "
                    "confirmation; add --yes",
                    file=sys.stderr,
                )
                return 1
            question = f"Delete what {runtime.character.name} remembers of {args.user} {where}? "
            answer = await asyncio.to_thread(input, question + "[y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing deleted.")
                return 1
        count = await forget(
            runtime.store, agent_id=runtime.agent_id, entity_id=args.user, room_id=room
        )
        print(f"Deleted {count} memories of {args.user} {where}.")
        return 0


def add_commands(commands: Any) -> None:
    """The ``chat`` and ``forget`` subcommands' arguments."""
    chat_parser = commands.add_parser(
        "chat", help="Chat with an agent (reads stdin when not a TTY)."
    )
    chat_parser.add_argument(
        "--character",
        "-c",
        help="Character file (default: CARRIER_CHARACTER or the builtin 'Nova').",
    )
    chat_parser.add_argument("--user", default="user", help="Your user id (default: user).")
    chat_parser.add_argument(
        "--name", help="Your name as the agent sees it (default: the OS account's name)."
    )
    chat_parser.add_argument("--room", help="Room id (default: this user's current room).")
    chat_parser.add_argument(
        "--new", action="store_true", help="Start a new conversation (a fresh room)."
    )
    chat_parser.add_argument("--no-stream", action="store_true", help="Print whole answers.")

    forget_parser = commands.add_parser(
        "forget",
        help="Delete what the agent remembers of a user, in the current chat room or all.",
        description="Delete a user's messages, the agent's answers to them and what was "
        "learned about the user (facts, summaries): in the user's current 'carrier chat' "
        "room (or --room), or in every room with --all. Asks for confirmation.",
    )
    forget_parser.add_argument("--character", "-c", help="Character file.")
    forget_parser.add_argument("--user", default="user", help="The user id (default: user).")
    forget_parser.add_argument("--room", help="Room id (default: the user's chat room).")
    forget_parser.add_argument("--all", action="store_true", help="Every room of the user.")
    forget_parser.add_argument("--yes", "-y", action="store_true", help="Do not ask.")
