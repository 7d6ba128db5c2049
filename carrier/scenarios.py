"""``carrier test``: scenario files, conversations with a character and what each turn
must show.

A scenario file (YAML) names a character, a model, rooms, and turns: a message from a
named user in a room, with expectations about the agent's answer (``docs/scenarios.md``).
Each scenario runs in a fresh runtime on an in-memory store, on the host's plugins.
The model is scripted (``model: {script: [...]}`` or a turn's ``answer:``), a registered
spec (``model: echo``), a cassette (``model: {cassette: FILE}``; ``--record`` writes it
from the live model), or, with ``--model SPEC``, a live model for every scenario.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from carrier.errors import CarrierError
from carrier.judging import judged
from carrier.protocols import Model
from carrier.types import ActionCall, ModelRequest, ModelResponse

if TYPE_CHECKING:
    from carrier.host import PluginHost
    from carrier.replay import Cassette
    from carrier.runtime import AgentRuntime
    from carrier.types import Event, Reply

__all__ = ["ScenarioError", "TurnResult", "run_files", "write_junit"]

_CHECKS = {
    "reply_contains",
    "reply_matches",
    "reply_not_contains",
    "action",
    "no_action",
    "ignored",
    "fact_stored",
    "visible_to",
    "not_visible_to",
    "judge",
}


class ScenarioError(CarrierError):
    """A scenario file is malformed; the message names the file and the field."""


@dataclass
class TurnResult:
    """One turn: who said what where, what the agent did, and each failed check."""

    scenario: str
    file: str
    index: int
    user: str
    room: str
    text: str
    reply: str = ""
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read the scenario file: {exc}") from exc
    if isinstance(data, dict) and "scenarios" in data:
        data = data["scenarios"]
    items = data if isinstance(data, list) else [data]
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("turns"), list):
            raise ScenarioError(f"{path}: scenario {number}: expected a mapping with 'turns'.")
        for index, turn in enumerate(item["turns"], 1):
            if not isinstance(turn, dict) or "text" not in turn:
                raise ScenarioError(f"{path}: turns[{index}]: a turn needs 'text' (and 'user').")
            unknown = set(turn.get("expect") or {}) - _CHECKS
            if unknown:
                raise ScenarioError(
                    f"{path}: turns[{index}].expect: unknown check "
                    f"{sorted(unknown)[0]!r}; known: {', '.join(sorted(_CHECKS))}."
                )
    return items


class _ScriptModel(Model):
    """Answers from the scenario's script in order, then ``default``. (``FakeModel`` is in
    ``carrier.testing``, which needs pytest; ``carrier test`` must not.)"""

    name = "script"
    calls_actions = True

    def __init__(self, default: str) -> None:
        self.default = default
        self.answers: list[ModelResponse] = []

    def queue(self, text: str = "", actions: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        calls = [ActionCall(name=name, arguments=arguments) for name, arguments in actions]
        self.answers.append(ModelResponse(text=text, action_calls=calls, model=self.name))

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if self.answers:
            return self.answers.pop(0)
        return ModelResponse(text=self.default, model=self.name)


def _answer(spec: Any) -> dict[str, Any]:
    """A scripted answer: ``"text"`` or ``{text, actions: [NAME | {name, arguments}]}``."""
    if isinstance(spec, str):
        return {"text": spec}
    actions: list[tuple[str, dict[str, Any]]] = []
    for action in spec.get("actions") or []:
        if isinstance(action, str):
            actions.append((action, {}))
        else:
            actions.append((action["name"], dict(action.get("arguments") or {})))
    return {"text": str(spec.get("text", "")), "actions": actions}


@dataclass
class _Models:
    models: dict[str, Model | str | None]
    script: _ScriptModel | None = None
    cassettes: list[Cassette] = field(default_factory=list)
    judge: Model | None = None


def _create(host: PluginHost, spec: str) -> Model:
    """A model from a spec such as ``echo`` or ``openai:gpt-4.1-mini``."""
    backend, _, model_id = spec.partition(":")
    return host.models.create(backend, **({"model": model_id} if model_id else {}))


def _judge(
    host: PluginHost, scenario: dict[str, Any], live: str | None, cli: str | None
) -> Model | None:
    """The model that decides ``judge`` checks: ``--judge``, the scenario's ``judge:``
    (a spec or ``{script: [VERDICT, ...]}``), else the live ``--model``."""
    spec = cli or scenario.get("judge") or live
    if isinstance(spec, dict):
        scripted = _ScriptModel(str(spec.get("default", "FAIL: no scripted verdict left")))
        for verdict in spec.get("script") or []:
            scripted.queue(text=str(verdict))
        return scripted
    return _create(host, str(spec)) if spec else None


def _build(
    host: PluginHost, scenario: dict[str, Any], base: Path, live: str | None, record: bool
) -> _Models:
    spec = scenario.get("model")
    embedding = spec.get("embedding") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and "cassette" in spec and (record or live is None):
        from carrier.replay import Cassette, CassetteError

        try:
            cassette = Cassette(
                base / str(spec["cassette"]),
                mode="record" if record else "replay",
                strict=bool(spec.get("strict", True)),
                record_hint="record it with: carrier test --record --model SPEC FILE",
            )
        except CassetteError as exc:
            raise ScenarioError(str(exc)) from exc
        source = live or str(spec.get("record_with") or "") or host.carrier_settings.model_large

        def real() -> Model:
            return _create(host, source or "echo")

        wrapped = {c: cassette.wrap(real, label=c) for c in ("large", "small")}
        return _Models({**wrapped, "embedding": embedding}, cassettes=[cassette])
    if live is not None:
        return _Models({"large": live, "small": live, "embedding": embedding})
    if spec is None or isinstance(spec, dict):
        fake = _ScriptModel(str((spec or {}).get("default", "ok")))
        for answer in (spec or {}).get("script") or []:
            fake.queue(**_answer(answer))
        return _Models({"large": fake, "small": fake, "embedding": embedding}, script=fake)
    return _Models({"large": str(spec), "small": str(spec), "embedding": embedding})


def _character(host: PluginHost, scenario: dict[str, Any], base: Path) -> Any:
    from carrier.character import Character, load_character

    value = scenario.get("character")
    if value is None:
        return host.carrier_settings.character or None
    if isinstance(value, dict):
        return Character.model_validate(value)
    return load_character(base / str(value))


async def _run_scenario(
    host: PluginHost,
    scenario: dict[str, Any],
    path: Path,
    *,
    live: str | None,
    record: bool,
    judge: str | None = None,
) -> list[TurnResult]:
    from carrier.builtin.memory_store import InMemoryStore
    from carrier.runtime import AgentRuntime
    from carrier.types import EventType, IncomingMessage, Role, RoomType

    name = str(scenario.get("name") or path.stem)
    rooms = {str(k): RoomType(v) for k, v in (scenario.get("rooms") or {}).items()}
    built = _build(host, scenario, path.parent, live, record)
    judged_turns = [
        i for i, t in enumerate(scenario["turns"], 1) if "judge" in (t.get("expect") or {})
    ]
    if judged_turns:
        built.judge = _judge(host, scenario, live, judge)
        if built.judge is None:
            raise ScenarioError(
                f"{path}: turns[{judged_turns[0]}].expect.judge needs a judge model: give the "
                f"scenario 'judge: SPEC' (or 'judge: {{script: [PASS, ...]}}'), or run with "
                f"--judge SPEC or --model SPEC."
            )
    results: list[TurnResult] = []
    started: dict[str, list[dict[str, Any]]] = {}

    def listen(event: Event) -> None:
        if event.type is EventType.ACTION_STARTED and event.message_id:
            started.setdefault(event.message_id, []).append(event.data)

    runtime = AgentRuntime(
        _character(host, scenario, path.parent),
        host=host,
        store=InMemoryStore(),
        models=built.models,
    )
    async with runtime:
        runtime.listen(listen)
        for index, turn in enumerate(scenario["turns"], 1):
            user = str(turn.get("user", "user"))
            room = turn.get("room")
            room_type = RoomType(turn.get("room_type", rooms.get(str(room), "direct")))
            if built.script is not None and "answer" in turn:
                built.script.queue(**_answer(turn["answer"]))
            reply = await runtime.handle(
                IncomingMessage(
                    text=str(turn["text"]),
                    user_id=user,
                    user_name=user,
                    room_id=str(room) if room else None,
                    room_type=room_type,
                    source="scenario",
                    role=Role(turn.get("role", "member")),
                )
            )
            await reply.evaluated()
            result = TurnResult(
                scenario=name,
                file=str(path),
                index=index,
                user=user,
                room=reply.message.room_id if room else "(dm)",
                text=str(turn["text"]),
                reply=" | ".join(reply.texts) or ("(ignored)" if reply.ignored else ""),
            )
            calls = started.get(reply.message.id, [])
            if calls:
                result.reply += f" [{', '.join(str(c.get('action')) for c in calls)}]"
            if reply.error:
                result.failures.append(f"the agent failed: {reply.error}")
            for check, expected in (turn.get("expect") or {}).items():
                result.checks.append(check)
                if check == "judge":
                    assert built.judge is not None
                    answer = "\n".join(reply.texts) or "(no reply)"
                    problem = await judged(built.judge, str(expected), str(turn["text"]), answer)
                else:
                    problem = await _check(runtime, check, expected, reply, calls, rooms)
                if problem:
                    result.failures.append(f"{check}: {problem}")
            results.append(result)
    for cassette in built.cassettes:
        cassette.save()
        try:
            cassette.check()
        except AssertionError as exc:
            results[-1].failures.append(f"cassette: {exc}")
    return results


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


async def _check(
    runtime: AgentRuntime,
    check: str,
    expected: Any,
    reply: Reply,
    calls: list[dict[str, Any]],
    rooms: dict[str, Any],
) -> str | None:
    """What is wrong with the turn for ``check``, or ``None`` when it holds."""
    text = "\n".join(reply.texts)
    if check == "reply_contains":
        missing = [e for e in _as_list(expected) if str(e).lower() not in text.lower()]
        return f"{missing[0]!r} not in the reply {text!r}" if missing else None
    if check == "reply_not_contains":
        found = [e for e in _as_list(expected) if str(e).lower() in text.lower()]
        return f"{found[0]!r} is in the reply {text!r}" if found else None
    if check == "reply_matches":
        return None if re.search(str(expected), text) else f"{text!r} does not match {expected!r}"
    if check == "ignored":
        if bool(expected) == reply.ignored:
            return None
        return "the agent answered" if expected else "the agent ignored the message"
    names = [str(c.get("action")) for c in calls]
    if check == "no_action":
        return f"the agent chose {', '.join(names)}" if names and expected else None
    if check == "action":
        want: dict[str, Any] = {"name": expected} if isinstance(expected, str) else dict(expected)
        for call in calls:
            if call.get("action") != want["name"]:
                continue
            arguments = call.get("arguments") or {}
            wanted = dict(want.get("arguments") or {})
            if all(arguments.get(k) == v for k, v in wanted.items()):
                return None
            return f"{want['name']} was chosen with {arguments!r}, expected {wanted!r}"
        return f"{want['name']!r} was not chosen (chosen: {', '.join(names) or 'none'})"
    if check == "fact_stored":
        from carrier.types import MemoryType

        facts = await runtime.store.get_memories(
            agent_id=runtime.agent_id, type=MemoryType.FACT, limit=1000
        )
        texts = [f.content.text for f in facts]
        missing = [
            e for e in _as_list(expected) if not any(str(e).lower() in t.lower() for t in texts)
        ]
        return f"no fact contains {missing[0]!r} (facts: {texts!r})" if missing else None
    # visible_to / not_visible_to: {user, text, room?}
    return await _visibility(runtime, check == "visible_to", dict(expected), rooms)


async def _visibility(
    runtime: AgentRuntime, want: bool, expected: dict[str, Any], rooms: dict[str, Any]
) -> str | None:
    from carrier.types import RoomType, SearchScope

    user = str(expected["user"])
    room_id = str(expected.get("room") or f"default-room-{runtime.agent_id}-{user}")
    room = await runtime.store.get_room(room_id)
    room_type = room.type if room is not None else rooms.get(room_id, RoomType.DIRECT)
    direct = room.direct if room is not None else room_type in (RoomType.DIRECT, RoomType.API)
    scope = SearchScope(room_id=room_id, entity_id=user, direct=direct)
    needle = str(expected["text"]).lower()
    memories = await runtime.store.get_memories(agent_id=runtime.agent_id, limit=10_000)
    matching = [m for m in memories if needle in m.content.text.lower()]
    if not matching:
        return f"no memory contains {expected['text']!r}"
    visible = [m for m in matching if scope.allows(m)]
    where = f"{user} in {expected.get('room') or 'their direct room'}"
    if want and not visible:
        return f"{expected['text']!r} is not visible to {where}"
    if not want and visible:
        seen = visible[0]
        return f"{expected['text']!r} is visible to {where} ({seen.type.value} in {seen.room_id!r})"
    return None


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(results: Sequence[TurnResult], out: TextIO) -> None:
    """The turns as a table, then each failure in full."""
    rows = [("scenario", "#", "user", "room", "message", "reply", "checks", "result")]
    for r in results:
        rows.append(
            (
                _cut(r.scenario, 24),
                str(r.index),
                _cut(r.user, 12),
                _cut(r.room, 14),
                _cut(r.text, 30),
                _cut(r.reply, 30),
                _cut(", ".join(r.checks) or "-", 32),
                "PASS" if r.passed else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
    failed = [r for r in results if not r.passed]
    for r in failed:
        for failure in r.failures:
            print(f"FAIL {r.file} {r.scenario!r} turn {r.index}: {failure}", file=out)
    print(
        f"{len(results)} turns: {len(results) - len(failed)} passed, {len(failed)} failed", file=out
    )


def write_junit(results: Sequence[TurnResult], path: str | Path) -> None:
    """JUnit XML: a test suite per scenario, a test case per turn."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="carrier test")
    suites: dict[tuple[str, str], ET.Element] = {}
    for r in results:
        suite = suites.get((r.file, r.scenario))
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name=r.scenario, file=r.file)
            suites[(r.file, r.scenario)] = suite
        case = ET.SubElement(
            suite,
            "testcase",
            classname=r.scenario,
            name=f"turn {r.index}: {r.user}: {_cut(r.text, 60)}",
            file=r.file,
        )
        if r.failures:
            failure = ET.SubElement(case, "failure", message=r.failures[0])
            failure.text = "\n".join(r.failures) + f"\nreply: {r.reply}"
    for (_, _), suite in suites.items():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(1 for r in results if r.failures)))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


async def run_files(
    host: PluginHost,
    files: Sequence[str],
    *,
    live: str | None = None,
    record: bool = False,
    junit_xml: str | None = None,
    out: TextIO | None = None,
    judge: str | None = None,
) -> int:
    """Run every scenario of ``files``; print the table; 0 when every turn passed."""
    out = out or sys.stdout
    if not files:
        raise ScenarioError("No scenario file given: carrier test scenarios/*.yaml")
    results: list[TurnResult] = []
    for file in files:
        path = Path(file)
        for scenario in _load(path):
            results += await _run_scenario(
                host, scenario, path, live=live, record=record, judge=judge
            )
    print_table(results, out)
    if junit_xml:
        write_junit(results, junit_xml)
    return 0 if all(r.passed for r in results) else 1
