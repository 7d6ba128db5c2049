"""Approvals survive SIGKILL (docs/approvals.md): real ``carrier`` processes on a SQLite
file, a throwaway plugin whose approval-required action leaves a line per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from carrier.testing.distributions import plugin_distribution

PLUGIN = textwrap.dedent('''
    """Test plugin: PAY needs approval; each run leaves its idempotency key in a file."""
    import os, signal
    from pathlib import Path
    from pydantic import BaseModel, Field
    import carrier
    from carrier.protocols import Action, Model
    from carrier.types import ActionCall, ActionResult, ModelResponse

    OUT = Path(os.environ["LEASH_DIR"])

    class PayArgs(BaseModel):
        amount: int = Field(gt=0, le=100)

    class Scripted(Model):
        name = "scripted"
        async def generate(self, request):
            if request.actions and request.metadata.get("step") == 0 and not any(
                "PAY" in (m.content or "") for m in request.messages if m.role == "tool"
            ) and "pay" in request.messages[-1].content:
                call = ActionCall(name="PAY", arguments={"amount": 5})
                return ModelResponse(text="", action_calls=[call])
            return ModelResponse(text="Payment handled.")

    class Pay(Action):
        name = "PAY"
        description = "Pays (an external effect)."
        parameters = PayArgs
        requires_approval = True
        async def handler(self, runtime, message, state, arguments):
            with open(OUT / "pay", "a") as f:
                f.write(f"{state.idempotency_key} {arguments.amount}\\n")
            if os.environ.get("LEASH_CRASH") and not (OUT / "crashed").exists():
                (OUT / "crashed").write_text("yes")
                os.kill(os.getpid(), signal.SIGKILL)
            return ActionResult(name=self.name, text=f"paid {arguments.amount}")

    @carrier.hookimpl
    def carrier_register_models(models):
        models.add("scripted", lambda **_: Scripted())

    @carrier.hookimpl
    def carrier_register_actions(actions):
        actions.add("PAY", Pay)
''')

CARRIER = str(Path(sys.executable).with_name("carrier"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    site = plugin_distribution(tmp_path / "site", "leash", PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")}
    env.update(
        PYTHONPATH=str(site),
        PYTHONUNBUFFERED="1",
        LEASH_DIR=str(tmp_path),
        CARRIER_DATABASE_URL=f"sqlite:///{tmp_path / 'agent.db'}",
        CARRIER_MODEL_LARGE="scripted",
        CARRIER_MODEL_SMALL="scripted",
        CARRIER_MODEL_EMBEDDING="none",
        CARRIER_PLUGINS="leash,sql",
    )
    return env


def _carrier(env: dict[str, str], *args: str, text: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARRIER, *args], input=text, capture_output=True, text=True, env=env, timeout=120
    )


def _request_then_kill(env: dict[str, str]) -> str:
    """``carrier chat``: ask to pay, wait for the pending notice, SIGKILL the process."""
    with subprocess.Popen(
        [CARRIER, "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as chat:
        assert chat.stdin is not None
        assert chat.stdout is not None
        chat.stdin.write("please pay the bill\n")
        chat.stdin.flush()
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "approval" not in line:
            line = chat.stdout.readline()
        os.kill(chat.pid, signal.SIGKILL)
        chat.wait(timeout=30)
    assert chat.returncode == -signal.SIGKILL
    assert "needs approval" in line, line
    return line


def _approvals(env: dict[str, str], *extra: str) -> list[dict[str, object]]:
    listed = _carrier(env, "approvals", "list", "--json", *extra)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def _pay_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "pay"
    return path.read_text().splitlines() if path.exists() else []


def test_a_pending_approval_survives_sigkill_and_runs_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    _request_then_kill(env)
    assert _pay_lines(tmp_path) == []
    (pending,) = _approvals(env)
    assert pending["action"] == "PAY"
    assert pending["status"] == "pending"
    invalid = _carrier(
        env, "approvals", "approve", str(pending["id"]), "--arguments", '{"amount": 0}'
    )
    assert invalid.returncode == 1
    assert "stays pending" in invalid.stderr
    assert len(_approvals(env)) == 1
    approved = _carrier(env, "approvals", "approve", str(pending["id"]), "--by", "dana")
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout
    assert "Payment handled." in approved.stdout
    assert _pay_lines(tmp_path) == [f"{pending['idempotency_key']} 5"]
    again = _carrier(env, "approvals", "approve", str(pending["id"]))
    assert again.returncode == 1
    assert "already" in again.stderr
    assert len(_pay_lines(tmp_path)) == 1
    assert _approvals(env) == []


def test_a_resume_cut_off_by_sigkill_finishes_at_the_next_start(
    env: dict[str, str], tmp_path: Path
) -> None:
    _request_then_kill(env)
    (pending,) = _approvals(env)
    crashed = _carrier(
        {**env, "LEASH_CRASH": "1"}, "approvals", "approve", str(pending["id"]), "--by", "dana"
    )
    assert crashed.returncode == -signal.SIGKILL
    (decided,) = _approvals(env, "--all")
    assert decided["status"] == "approved"
    assert decided["done"] is False
    restarted = _carrier(env, "chat")  # recovers at start, as every long-running command
    assert restarted.returncode == 0, restarted.stderr
    (done,) = _approvals(env, "--all")
    assert done["done"] is True
    key = pending["idempotency_key"]
    assert _pay_lines(tmp_path) == [f"{key} 5", f"{key} 5"]  # re-run with the same key
