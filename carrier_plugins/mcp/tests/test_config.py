"""The operator's configuration: the mcpServers shape, ${VAR}, what a character may
choose, safe action names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from carrier_plugin_mcp.config import (
    action_name,
    assign_action_names,
    load_servers,
    servers_for,
)

from carrier.errors import ConfigurationError
from carrier.types import Role

SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_the_claude_desktop_shape_with_variables(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {
                        "command": "npx",
                        "args": ["-y", "server-files", "${ROOT}"],
                        "env": {"TOKEN": "${TOKEN:-none}"},
                    },
                    "remote": {
                        "url": "https://mcp.example.com/${PATH_PART}",
                        "headers": {"Authorization": "Bearer ${KEY}"},
                        "toolRoles": {"drop": "admin"},
                        "role": "member",
                        "deny": ["rm"],
                    },
                    "off": {"command": "x", "disabled": True},
                }
            }
        )
    )
    environ = {"ROOT": "/data", "PATH_PART": "mcp", "KEY": "k1"}
    servers = load_servers(str(path), environ=environ)
    assert sorted(servers) == ["files", "remote"]
    files, remote = servers["files"], servers["remote"]
    assert (files.transport, files.args, dict(files.env)) == (
        "stdio",
        ("-y", "server-files", "/data"),
        {"TOKEN": "none"},
    )
    assert (remote.transport, remote.url) == ("http", "https://mcp.example.com/mcp")
    assert dict(remote.headers) == {"Authorization": "Bearer k1"}
    assert remote.required_role("drop") is Role.ADMIN
    assert remote.required_role("list") is Role.MEMBER
    assert not remote.allows("rm")
    assert remote.allows("list")


def test_an_unset_variable_names_the_server_and_the_variable() -> None:
    config = json.dumps({"mcpServers": {"s": {"command": "run", "args": ["${NOPE}"]}}})
    with pytest.raises(ConfigurationError, match=r"'s' uses \$\{NOPE\}, which is not set"):
        load_servers(config, environ={})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"args": []}, "needs a 'command'"),
        ({"type": "sse", "url": "http://x/sse"}, "SSE transport is not supported"),
        ({"command": "x", "role": "god"}, "'role' is 'god'"),
        ({"command": "x", "shell": "rm -rf /"}, "unknown keys"),
        ({"command": "x", "requireApproval": "yes"}, "'requireApproval' is 'yes'"),
        ({"command": "x", "requireApproval": []}, "'requireApproval' is []"),
        ({"command": "x", "requireApproval": ["ok", 3]}, "'requireApproval' is ['ok', 3]"),
        ({"command": "x", "requireApproval": True, "approverRole": "boss"}, "'approverRole'"),
        ({"command": "x", "require_approval": True}, "unknown keys ['require_approval']"),
    ],
)
def test_bad_entries_say_what_is_wrong(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_servers(json.dumps({"mcpServers": {"s": entry}}), environ={})


def test_a_character_only_chooses_among_configured_servers() -> None:
    servers = load_servers(
        json.dumps({"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}}), environ={}
    )
    assert [s.name for s in servers_for(None, servers, character="Ada")] == ["a", "b"]
    assert [s.name for s in servers_for("b", servers, character="Ada")] == ["b"]
    assert [s.name for s in servers_for(["a"], servers, character="Ada")] == ["a"]
    with pytest.raises(ConfigurationError, match=r"Character 'Ada' uses MCP servers \['evil'\]"):
        servers_for(["evil"], servers, character="Ada")


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("github", "create_issue", "github__create_issue"),
        ("my.server", "files/read v2", "my_server__files_read_v2"),
        ("s", "é", "s___"),
    ],
)
def test_action_names_are_safe(server: str, tool: str, expected: str) -> None:
    assert action_name(server, tool) == expected


def test_long_names_are_cut_with_a_hash() -> None:
    long_a, long_b = "t" * 100 + "a", "t" * 100 + "b"
    name_a, name_b = action_name("srv", long_a), action_name("srv", long_b)
    assert SAFE.match(name_a)
    assert SAFE.match(name_b)
    assert len(name_a) == 64
    assert name_a != name_b


def test_a_clash_after_making_names_safe_names_both() -> None:
    with pytest.raises(ConfigurationError) as info:
        assign_action_names([("s", "a.b"), ("s", "a_b")])
    message = str(info.value)
    assert "'a_b' of MCP server 's'" in message
    assert "'a.b' of MCP server 's'" in message


def test_require_approval_by_setting() -> None:
    """``true`` for every tool, or names and patterns; the approver is never below the
    role the tool needs."""
    config = {
        "mcpServers": {
            "all": {"command": "x", "requireApproval": True, "approverRole": "owner"},
            "some": {
                "command": "x",
                "requireApproval": ["send_email", "delete_*"],
                "approverRole": "member",
                "toolRoles": {"delete_repo": "admin"},
            },
            "none": {"command": "x"},
        }
    }
    servers = load_servers(json.dumps(config), environ={})
    every, some, none = servers["all"], servers["some"], servers["none"]
    assert every.needs_approval("read")
    assert every.approver_for("read") is Role.OWNER
    assert some.needs_approval("send_email")
    assert some.needs_approval("delete_file")
    assert some.needs_approval("delete_repo")
    assert not some.needs_approval("send_email_draft")
    assert not some.needs_approval("read")
    assert some.approver_for("delete_file") is Role.MEMBER
    assert some.approver_for("delete_repo") is Role.ADMIN  # raised to the tool's role
    assert not none.needs_approval("anything")
    assert none.approver_for("anything") is Role.ADMIN
