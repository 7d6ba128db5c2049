"""Exactly once, end to end (DESIGN §8), against real processes killed with SIGKILL.

A throwaway distribution on ``PYTHONPATH`` adds a scripted model, actions with side
effects (a line in a file per run) and a slow evaluator, through the ``carrier`` entry
point, so ``carrier chat`` loads them as it would any installed plugin. Restarting
``carrier chat`` recovers on its own: no test calls ``recover()`` in the child.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.settings import CarrierSettings
from carrier.testing import FakeModel
from carrier.testing.distributions import plugin_distribution
from carrier.types import Content, Memory

PLUGIN = textwrap.dedent('''
    """Test plugin: every run of an action or evaluator leaves a line in a file."""
    import asyncio, os, signal
    from pathlib import Path
    import carrier
    from carrier.protocols import Action, Evaluator, Model
    from carrier.types import ActionCall, ActionResult, EvaluatorResult, ModelResponse

    OUT = Path(os.environ["ONCE_DIR"])

    def note(name, line):
        with open(OUT / name, "a") as f:
            f.write(line + "\\n")

    class Scripted(Model):
        name = "scripted"
        async def generate(self, request):
            note("model", request.messages[-1].content)
            if request.actions and request.metadata.get("step") == 0:
                names = os.environ.get("ONCE_CALLS", "").split(",")
                calls = [ActionCall(name=a) for a in names if a]
                return ModelResponse(text="All done.", action_calls=calls)
            return ModelResponse(text="All done.")

    class Charge(Action):
        name = "CHARGE"
        description = "Charges the card (an external effect)."
        async def handler(self, runtime, message, state, arguments):
            note("charge", state.idempotency_key)
            return ActionResult(name=self.name, text="charged")

    class Crash(Action):
        name = "CRASH"
        description = "Dies the first time it runs."
        async def handler(self, runtime, message, state, arguments):
            note("crash", state.idempotency_key)
            if not (OUT / "crashed").exists():
                (OUT / "crashed").write_text("yes")
                os.kill(os.getpid(), signal.SIGKILL)
            return ActionResult(name=self.name, text="survived")

    class Slow(Evaluator):
        name = "slow"
        timeout_s = 120.0
        async def handler(self, runtime, message, state, responses):
            note("evaluator", message.id)
            if not (OUT / "evaluated-once").exists():
                (OUT / "evaluated-once").write_text("yes")
                await asyncio.sleep(60)  # killed here
            note("evaluated", message.id)
            return EvaluatorResult(name=self.name)

    @carrier.hookimpl
    def carrier_register_models(models):
        models.add("scripted", lambda **_: Scripted())

    @carrier.hookimpl
    def carrier_register_actions(actions):
        actions.add("CHARGE", Charge)
        actions.add("CRASH", Crash)

    @carrier.hookimpl
    def carrier_register_evaluators(evaluators):
        if os.environ.get("ONCE_SLOW_EVALUATOR"):
            evaluators.add("slow", Slow)
''')


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder holding the plugin module and a dist-info naming its entry point."""
    return plugin_distribution(tmp_path / "site", "once", PLUGIN)


def _env(tmp_path: Path, plugin_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        PYTHONPATH=str(plugin_path),
        ONCE_DIR=str(tmp_path),
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path / 'agent.db'}",
        CARRIER_MODEL_LARGE="scripted",
        CARRIER_MODEL_SMALL="scripted",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_PLUGINS="once,sql",
        **extra,
    )
    return env


def _chat(env: dict[str, str], text: str = "") -> subprocess.CompletedProcess[str]:
    carrier = Path(sys.executable).with_name("carrier")
    return subprocess.run(
        [str(carrier), "chat"], input=text, capture_output=True, text=True, env=env, timeout=120
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _replies(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "agent.db") as db:
        rows = db.execute(
            "SELECT id FROM memories WHERE type = 'message' AND entity_id != 'user'"
        ).fetchall()
    return [row[0] for row in rows]


def test_a_completed_action_never_runs_again_after_a_crash(
    tmp_path: Path, plugin_path: Path
) -> None:
    env = _env(tmp_path, plugin_path, ONCE_CALLS="CHARGE,CRASH")
    first = _chat(env, "charge my card, please\n")
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert len(_lines(tmp_path / "charge")) == 1
    assert len(_lines(tmp_path / "crash")) == 1
    assert _replies(tmp_path) == []  # killed before the reply was stored

    second = _chat(env)  # no input: it only recovers, then exits
    assert second.returncode == 0, second.stderr
    charges, crashes = _lines(tmp_path / "charge"), _lines(tmp_path / "crash")
    assert len(charges) == 1  # completed before the crash: never again
    assert len(crashes) == 2  # interrupted: ran again ...
    assert crashes[0] == crashes[1]  # ... with the same idempotency key
    assert crashes[0].endswith(":0:1")  # step 0, second call
    assert len(_replies(tmp_path)) == 1  # the reply, stored once
    assert _lines(tmp_path / "model") == ["charge my card, please"]  # replayed, not re-asked

    third = _chat(env)  # nothing left to do
    assert third.returncode == 0, third.stderr
    assert len(_lines(tmp_path / "crash")) == 2
    assert len(_replies(tmp_path)) == 1


def test_the_answer_comes_before_a_slow_evaluator_and_a_crash_reruns_only_it(
    tmp_path: Path, plugin_path: Path
) -> None:
    env = _env(tmp_path, plugin_path, ONCE_SLOW_EVALUATOR="1")
    carrier = Path(sys.executable).with_name("carrier")
    child = subprocess.Popen(
        [str(carrier), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write("hello there\n")
    child.stdin.flush()
    started = time.monotonic()
    answer = child.stdout.readline()  # printed while the evaluator still sleeps
    assert answer.strip() == "All done."
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 30
    while not _lines(tmp_path / "evaluator") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_lines(tmp_path / "evaluator")) == 1
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert _lines(tmp_path / "evaluated") == []
    assert len(_replies(tmp_path)) == 1

    restart = _chat(env)
    assert restart.returncode == 0, restart.stderr
    assert len(_lines(tmp_path / "evaluator")) == 2  # the evaluator ran again ...
    assert len(_lines(tmp_path / "evaluated")) == 1  # ... to its end, once
    assert _lines(tmp_path / "model") == ["hello there"]  # the model was not asked again
    assert len(_replies(tmp_path)) == 1


async def test_two_recoveries_at_once_handle_each_message_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    models = [FakeModel(latency_s=0.01), FakeModel(latency_s=0.01)]
    runtimes = [
        AgentRuntime(
            host=PluginHost(
                settings=CarrierSettings(database_url=url, plugins="sql", _env_file=None)
            ),
            models={"large": model, "small": model, "embedding": None},
        )
        for model in models
    ]
    async with runtimes[0] as first, runtimes[1] as second:
        for n in range(20):  # stored, never answered: what a crash leaves
            await first.store.create_memory(
                Memory(
                    id=f"left-{n}",
                    agent_id=first.agent_id,
                    entity_id=f"user-{n % 4}",
                    room_id=f"room-{n % 4}",
                    content=Content(text=f"message {n}"),
                    metadata={"room_type": "direct", "role": "member"},
                )
            )
        done = await asyncio.gather(first.recover(), second.recover())
        answered = [r for replies in done for r in replies if r.texts and not r.duplicate]
        assert sorted(r.message.id for r in answered) == sorted(f"left-{n}" for n in range(20))
        assert len(models[0].requests) + len(models[1].requests) == 20
        for n in range(20):
            assert await first.store.get_memory(f"left-{n}-{first.agent_id}") is not None
        assert await first.store.unanswered_messages(agent_id=first.agent_id) == []
    # a direct handle of an answered message is a duplicate, never a second answer
    async with AgentRuntime(
        host=PluginHost(settings=CarrierSettings(database_url=url, plugins="sql", _env_file=None)),
        models={"large": models[0], "small": models[0], "embedding": None},
    ) as third:
        reply = await third.handle(
            IncomingMessage(
                text="message 0", user_id="user-0", room_id="room-0", message_id="left-0"
            )
        )
        assert reply.duplicate
        assert len(models[0].requests) + len(models[1].requests) == 20
