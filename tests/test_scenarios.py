"""``carrier test``: scenario files run against a character on a scripted model."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import carrier
from carrier import Action, ActionResult
from carrier.protocols import Model
from carrier.testing import CliRunner
from carrier.types import Memory, MemoryScope, MemoryType, ModelRequest, ModelResponse

# ---- A plugin for the scenarios: an action with arguments, and one storing a fact ----


class CityArgs(BaseModel):
    city: str


class GetWeather(Action):
    name = "GET_WEATHER"
    description = "Look up today's weather for a city."
    parameters = CityArgs

    async def handler(self, runtime: Any, message: Any, state: Any, arguments: Any) -> Any:
        return ActionResult(name=self.name, text=f"Sunny in {arguments.city}.")


class FactArgs(BaseModel):
    fact: str


class Remember(Action):
    name = "REMEMBER"
    description = "Remember a fact about the sender."
    parameters = FactArgs

    async def handler(self, runtime: Any, message: Any, state: Any, arguments: Any) -> Any:
        await runtime.store.create_memory(
            Memory(
                agent_id=runtime.agent_id,
                entity_id=message.entity_id,
                room_id=message.room_id,
                type=MemoryType.FACT,
                scope=MemoryScope.DIRECT if state.room.direct else MemoryScope.ROOM,
                content=carrier.Content(text=arguments.fact),
            )
        )
        return ActionResult(name=self.name, text="Noted.")


JUDGED: list[ModelRequest] = []


class RecordingJudge(Model):
    """A judge that passes a reply when it has no question mark, recording each request."""

    name = "recording-judge"

    async def generate(self, request: ModelRequest) -> ModelResponse:
        JUDGED.append(request)
        reply = request.messages[-1].content.split("<reply>")[1]
        if "?" in reply:
            return ModelResponse(text='{"pass": false, "reason": "it asks a question back"}')
        return ModelResponse(text='{"pass": true, "reason": "a plain statement"}')


class ScenarioPlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        actions.add("GET_WEATHER", GetWeather)
        actions.add("REMEMBER", Remember)

    @carrier.hookimpl
    def carrier_register_models(self, models: Any) -> None:
        models.add("recording-judge", lambda **_: RecordingJudge())


@pytest.fixture
def carrier_plugins() -> dict[str, object]:
    return {"scenario-actions": ScenarioPlugin()}


SCENARIO = """\
name: weather desk
character: {name: Testy, bio: [A careful test agent.]}
rooms: {general: group}
model:
  script: []
turns:
  - user: alice
    text: Hello!
    answer: Hi Alice, how can I help?
    expect:
      reply_contains: Hi Alice
      reply_matches: "^Hi"
      no_action: true
  - user: alice
    text: What is the weather in Oslo?
    answer: {text: Let me check., actions: [{name: GET_WEATHER, arguments: {city: Oslo}}]}
    expect:
      action: {name: GET_WEATHER, arguments: {city: Oslo}}
  - user: alice
    text: Remember that I like green tea.
    answer: {text: Noted., actions: [{name: REMEMBER, arguments: {fact: Alice likes green tea}}]}
    expect:
      fact_stored: likes green tea
      visible_to: {user: alice, text: green tea}
      not_visible_to: {user: bob, text: green tea}
  - user: bob
    room: general
    text: anyone around?
    expect:
      ignored: true
  - user: bob
    text: What does Alice drink?
    answer: I cannot tell you about other people.
    expect:
      ignored: false
      reply_not_contains: tea
      no_action: true
"""


def test_a_scenario_passes_on_the_scripted_model(carrier_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "desk.yaml").write_text(SCENARIO)
    junit = tmp_path / "junit.xml"
    result = carrier_cli("test", str(tmp_path / "desk.yaml"), "--junit-xml", str(junit))
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "scenario", "#", "user", "room", "message", "reply", "checks", "result"
    ]  # fmt: skip
    assert sum(line.endswith("PASS") for line in lines) == 5
    assert "(ignored)" in result.stdout
    assert lines[-1] == "5 turns: 5 passed, 0 failed"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("5", "0")


def test_a_broken_rule_fails_with_a_readable_table_and_junit(
    carrier_cli: CliRunner, tmp_path: Path
) -> None:
    broken = SCENARIO.replace("reply_contains: Hi Alice", "reply_contains: Goodbye").replace(
        "not_visible_to: {user: bob, text: green tea}",
        "visible_to: {user: bob, text: green tea}\n      "
        "not_visible_to: {user: alice, text: green tea}",
    )
    (tmp_path / "desk.yaml").write_text(broken)
    junit = tmp_path / "junit.xml"
    result = carrier_cli("test", str(tmp_path / "desk.yaml"), "--junit-xml", str(junit))
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL" in out.splitlines()[1]  # turn 1's row
    assert "turn 1: reply_contains: 'Goodbye' not in the reply 'Hi Alice, how can I help?'" in out
    assert "turn 3: visible_to: 'green tea' is not visible to bob in their direct room" in out
    assert "turn 3: not_visible_to: 'green tea' is visible to alice" in out
    assert out.splitlines()[-1] == "5 turns: 3 passed, 2 failed"

    root = ET.parse(junit).getroot()  # valid XML, with the failures
    assert (root.get("tests"), root.get("failures")) == ("5", "2")
    failures = root.findall(".//testcase/failure")
    assert failures[0].get("message") == (
        "reply_contains: 'Goodbye' not in the reply 'Hi Alice, how can I help?'"
    )


def test_an_unknown_check_is_named(carrier_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(SCENARIO.replace("no_action: true", "no_actoin: true", 1))
    result = carrier_cli("test", str(tmp_path / "bad.yaml"))
    assert result.exit_code == 1
    assert "turns[1].expect: unknown check 'no_actoin'" in result.stderr


def test_the_echo_model_and_a_wrong_action(carrier_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(
        "model: echo\n"
        "turns:\n"
        "  - {user: carol, text: ping, expect: {reply_contains: ping, no_action: true}}\n"
        "  - user: carol\n"
        "    text: weather?\n"
        "    expect: {action: {name: GET_WEATHER, arguments: {city: Oslo}}}\n"
    )
    result = carrier_cli("test", str(tmp_path / "echo.yaml"))
    assert result.exit_code == 1
    assert "turn 2: action: 'GET_WEATHER' was not chosen (chosen: none)" in result.stdout


def test_a_scenario_replays_its_cassette(carrier_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "recorded.yaml").write_text(
        "model: {cassette: cassettes/recorded.yaml}\n"
        "turns:\n"
        "  - {user: dave, text: hello there, expect: {reply_contains: hello there}}\n"
    )
    scenario = str(tmp_path / "recorded.yaml")
    result = carrier_cli("test", scenario)  # nothing recorded yet
    assert result.exit_code == 1
    assert "carrier test --record --model SPEC FILE" in result.stderr

    result = carrier_cli("test", "--record", "--model", "echo", scenario)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "You said: hello there" in (tmp_path / "cassettes" / "recorded.yaml").read_text()

    result = carrier_cli("test", scenario)  # replayed: the echo model is not called
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "You said: hello there" in result.stdout


JUDGED_SCENARIO = """\
name: judged
character: {name: Testy}
model: {script: []}
judge:
  script:
    - '{"pass": true, "reason": "it greets Alice by name"}'
    - "FAIL: the reply is curt, not friendly"
    - something else entirely
turns:
  - user: alice
    text: Hi, I am Alice.
    answer: Hello Alice, welcome!
    expect: {judge: The reply greets the user by name}
  - user: bob
    text: Hello?
    answer: What.
    expect: {judge: The reply is friendly}
  - user: bob
    text: Are you there?
    answer: Yes.
    expect: {judge: The reply is friendly}
"""


def test_judged_checks_pass_and_fail_with_the_judges_reason(
    carrier_cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "judged.yaml").write_text(JUDGED_SCENARIO)
    result = carrier_cli("test", str(tmp_path / "judged.yaml"))
    assert result.exit_code == 1
    out = result.stdout
    rows = out.splitlines()[1:4]
    assert [row.split()[-1] for row in rows] == ["PASS", "FAIL", "FAIL"]
    assert (
        "turn 2: judge: the judge says it does not hold ('The reply is friendly'): "
        "the reply is curt, not friendly"
    ) in out
    assert "turn 3: judge: the judge's answer is neither" in out
    assert "'something else entirely'" in out


def test_the_judge_sees_only_its_turn(carrier_cli: CliRunner, tmp_path: Path) -> None:
    JUDGED.clear()
    scenario = (
        JUDGED_SCENARIO.split("judge:\n  script:")[0]
        + "turns:"
        + JUDGED_SCENARIO.split("\nturns:")[1]
    )
    (tmp_path / "judged.yaml").write_text(scenario)
    result = carrier_cli("test", "--judge", "recording-judge", str(tmp_path / "judged.yaml"))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(JUDGED) == 3
    alice, bob, _ = (request.messages[-1].content for request in JUDGED)
    assert "Hi, I am Alice." in alice
    assert "Hello Alice, welcome!" in alice
    assert "Alice" not in bob  # another user's turn never reaches the judge
    assert JUDGED[0].response_schema is not None


def test_a_judge_check_without_a_judge_model_says_how_to_give_one(
    carrier_cli: CliRunner, tmp_path: Path
) -> None:
    scenario = (
        JUDGED_SCENARIO.split("judge:\n  script:")[0]
        + "turns:"
        + JUDGED_SCENARIO.split("\nturns:")[1]
    )
    (tmp_path / "judged.yaml").write_text(scenario)
    result = carrier_cli("test", str(tmp_path / "judged.yaml"))
    assert result.exit_code == 1
    assert "turns[1].expect.judge needs a judge model" in result.stderr
    assert "--judge SPEC" in result.stderr


@pytest.mark.parametrize(
    ("answer", "passed", "reason"),
    [
        ('{"pass": true, "reason": "ok"}', True, "ok"),
        ('Sure! {"pass": false, "reason": "rude"} Hope that helps.', False, "rude"),
        ("PASS - it greets them", True, "it greets them"),
        ("no: it ignores the question", False, "it ignores the question"),
    ],
)
def test_verdicts_are_read_from_json_or_a_first_word(
    answer: str, passed: bool, reason: str
) -> None:
    from carrier.judging import parse_verdict

    verdict = parse_verdict(answer)
    assert (verdict.passed, verdict.reason) == (passed, reason)
