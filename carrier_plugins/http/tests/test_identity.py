"""Per-user tokens carry a user and a role; the role reaches the runtime from the token
only, and the tokens themselves never show (repr, logs, errors, ``/me``)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
from carrier_plugin_http import plugin
from carrier_plugin_http.settings import HttpSettings
from pydantic import SecretStr

import carrier
from carrier.errors import ConfigurationError
from carrier.protocols import Action
from carrier.testing import FakeModel
from carrier.types import ActionResult, Role

TOKENS = {
    "tok-alice-7f3e9a": {"user": "alice", "role": "admin"},
    "tok-bob-51c2d0": "bob",
    "tok-olga-c4d8e1": {"user": "olga", "role": "OWNER"},
}
SECRETS = [*TOKENS, "shared-token-9d1f44"]


class Purge(Action):
    """An action only admins may run; records the role of each run."""

    name = "PURGE"
    description = "Delete old data."
    required_role = Role.ADMIN
    runs: ClassVar[list[str]] = []

    async def handler(self, runtime, message, state, arguments):  # type: ignore[no-untyped-def]
        Purge.runs.append(message.metadata["role"])
        return ActionResult(name=self.name, text="purged")


class PurgePlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions):  # type: ignore[no-untyped-def]
        actions.add("PURGE", Purge)


@pytest.fixture
def purge(host):  # type: ignore[no-untyped-def]
    Purge.runs = []
    host.register(PurgePlugin(), name="purge")
    return Purge.runs


def test_both_token_forms_parse_and_the_old_one_means_member() -> None:
    settings = HttpSettings(_env_file=None, user_tokens=TOKENS)
    grants = {(t.user, t.role) for t in settings.user_tokens}
    assert grants == {("alice", Role.ADMIN), ("bob", Role.MEMBER), ("olga", Role.OWNER)}
    assert {t.token.get_secret_value() for t in settings.user_tokens} == set(TOKENS)


def test_the_tokens_never_show_in_repr_str_or_dumps() -> None:
    settings = HttpSettings(
        _env_file=None, user_tokens=TOKENS, token=SecretStr("shared-token-9d1f44")
    )
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.user_tokens)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text
    assert "alice" in repr(settings)  # the users are not secret


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"tok-alice-7f3e9a": {"user": "alice", "role": "superuser"}}', "'superuser'"),
        ('{"tok-alice-7f3e9a": {"user": "alice", "role": 3}}', "unknown role 3"),
        ('{"tok-alice-7f3e9a": {"user": "a/b"}}', "'a/b' is not valid"),
        ('{"tok-alice-7f3e9a": {"name": "alice"}}', "unknown keys ['name']"),
        ('{"tok-alice-7f3e9a": ["alice"]}', "found a list"),
        ('{"": "alice"}', "non-empty"),
    ],
)
def test_a_bad_user_token_stops_start_up_naming_the_setting(host, monkeypatch, value, says) -> None:
    monkeypatch.setenv("CARRIER_HTTP_USER_TOKENS", value)
    host.register(plugin, name="http")
    with pytest.raises(ConfigurationError) as caught:
        host.settings.get("http")
    message = str(caught.value)
    assert "CARRIER_HTTP_USER_TOKENS" in message
    assert says in message
    assert "tok-alice-7f3e9a" not in message
    if "role" in says:
        assert "'owner', 'admin', 'member'" in message


def test_the_environment_form_is_read(host, monkeypatch) -> None:
    monkeypatch.setenv("CARRIER_HTTP_USER_TOKENS", '{"t1": {"user": "ann", "role": "admin"}}')
    monkeypatch.setenv("CARRIER_HTTP_ALLOWED_HOSTS", '["Chat.Example.org."]')
    host.register(plugin, name="http")
    settings = host.settings.get("http")
    ((token),) = settings.user_tokens
    assert (token.user, token.role) == ("ann", Role.ADMIN)
    assert settings.allowed_hosts == ["chat.example.org"]


async def test_the_role_comes_from_the_token_and_reaches_the_runtime(
    serve_agents, settings_with, purge
) -> None:
    model = FakeModel(default_text="done").queue("ok", actions=["PURGE"], times=3)
    settings = settings_with(user_tokens=TOKENS, token=SecretStr("shared-token-9d1f44"))
    async with (
        serve_agents(model=model, settings=settings) as served,
        served.client("tok-alice-7f3e9a") as alice,
        served.client("tok-bob-51c2d0") as bob,
        served.client("shared-token-9d1f44") as shared,
    ):
        for client, room in ((alice, "a"), (bob, "b"), (shared, "s")):
            sent = await client.post("/Testy/message", json={"text": "purge", "roomId": room})
            assert sent.status_code == 200, sent.text
        assert purge == ["admin"]  # bob and the shared token act as members
        roles = {}
        for room in ("a", "b", "s"):
            stored = await served.store.get_memories(
                agent_id=served.runtimes[0].agent_id, room_id=room
            )
            roles[room] = stored[0].metadata["role"]
        assert roles == {"a": "admin", "b": "member", "s": "member"}
        assert (await alice.get("/me")).json() == {"userId": "alice", "role": "admin"}
        assert (await shared.get("/me")).json() == {"userId": None, "role": "member"}


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {
            "json": {
                "text": "purge",
                "role": "owner",
                "metadata": {"role": "owner", "internal": True, "trusted": True},
            }
        },
        {"data": {"text": "purge", "role": "owner", "metadata": '{"role": "owner"}'}},
    ],
    ids=["json", "form"],
)
async def test_nothing_in_the_body_raises_the_role(
    serve_agents, purge, settings_with, request_kwargs: dict[str, Any]
) -> None:
    model = FakeModel(default_text="done").queue("ok", actions=["PURGE"], times=2)
    async with serve_agents(model=model) as served, served.client() as client:
        sent = await client.post("/Testy/message", **request_kwargs)
        assert sent.status_code == 200, sent.text
        agent_id = served.runtimes[0].agent_id
        room = f"default-room-{agent_id}-user"
        stored = await served.store.get_memories(agent_id=agent_id, room_id=room)
        (message,) = [m for m in stored if m.entity_id == "user"]
        assert message.metadata["role"] == "member"
        assert "internal" not in message.metadata
        assert "trusted" not in message.metadata
        assert purge == []


async def test_tokens_stay_out_of_the_log_and_the_answers(
    serve_agents, settings_with, caplog
) -> None:
    settings = settings_with(user_tokens=TOKENS, token=SecretStr("shared-token-9d1f44"))
    caplog.set_level(logging.DEBUG)
    async with (
        serve_agents(settings=settings) as served,
        served.client("tok-alice-7f3e9a") as alice,
        served.client("tok-alice-7f3e9b") as wrong,
        served.client() as anonymous,
    ):
        answers = [
            await alice.get("/me"),
            await alice.post("/Testy/message", json={"text": "hi"}),
            await alice.post("/Testy/message", json={"text": "hi", "userId": "bob"}),
            await wrong.get("/me"),
            await wrong.post("/Testy/message", json={"text": "hi"}),
            await anonymous.get("/agents"),
        ]
        assert [a.status_code for a in answers] == [200, 200, 403, 401, 401, 401]
        for answer in answers:
            for secret in [*SECRETS, "tok-alice-7f3e9b"]:
                assert secret not in answer.text
                assert secret not in str(answer.headers)
    for secret in SECRETS:
        assert secret not in caplog.text
