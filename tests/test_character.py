"""Characters: every ElizaOS shape loads; malformed files give ``file: field: reason``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carrier.character import (
    UnsupportedPluginWarning,
    check_plugins,
    load_character,
    plugin_name,
)
from carrier.errors import CarrierWarning, CharacterError, PluginLoadError
from carrier.host import PluginHost, PluginInfo
from carrier.runtime import DEFAULT_CHARACTER, AgentRuntime

CHARACTERS = Path(__file__).parent / "characters"


def test_v0_file_loads_with_lore_clients_and_string_bio() -> None:
    character = load_character(CHARACTERS / "eliza_v0.json")
    assert character.name == "Eliza"
    assert character.bio == ["Eliza is a chatbot from 1966 who got an upgrade."]
    assert character.lore[0].startswith("She was written")
    assert character.clients == ["discord", "direct"]
    assert character.model_provider == "openai"
    assert character.style.all == ["Ask questions."]
    turn = character.message_examples[0][1]
    assert turn.name == "Eliza"
    assert turn.content.model_extra == {"action": "CONTINUE"}
    assert character.knowledge[0].text == "Eliza was created at MIT."
    assert character.templates["messageHandlerTemplate"].endswith("says hi")
    assert character.model_extra == {"twitterProfile": {"id": "eliza", "username": "eliza_bot"}}


def test_v0_secrets_are_secret() -> None:
    character = load_character(CHARACTERS / "eliza_v0.json")
    secret = character.settings["secrets"]["OPENAI_API_KEY"]
    assert secret.get_secret_value() == "sk-test-secret-value"
    assert "sk-test-secret-value" not in repr(character)
    assert "sk-test-secret-value" not in str(character.model_dump())


def test_v1_file_uses_name_in_examples() -> None:
    character = load_character(CHARACTERS / "trump_v1.json")
    assert [t.name for t in character.message_examples[0]] == ["{{name1}}", "Statesman"]
    assert plugin_name(character.plugins[0]) == "bootstrap"


def test_v2_file_with_example_objects_knowledge_sources_and_top_level_secrets() -> None:
    character = load_character(CHARACTERS / "ada_v2.json")
    assert character.id == "5e8c3c2a-1b2d-4c3e-9f00-aaaaaaaaaaaa"
    assert character.message_examples[0][1].content.actions == ["REPLY"]
    assert character.knowledge[0].path == "docs/ada.md"
    assert character.knowledge[1].directory == "knowledge/ada"
    assert character.knowledge[1].shared is True
    assert character.knowledge[2].text == "Ada likes tea."
    assert character.all_secrets()["ANTHROPIC_API_KEY"].get_secret_value() == "sk-ant-secret"
    assert character.style.post == ["Crisp."]


def test_yaml_file_loads() -> None:
    character = load_character(CHARACTERS / "grace.yaml")
    assert character.name == "Grace"
    assert character.bio == ["Grace is a navy admiral and programmer."]
    assert character.message_examples[0][1].content.text == "Hello, sailor."


def test_default_character_loads_and_ids_are_stable() -> None:
    first = load_character(DEFAULT_CHARACTER)
    second = load_character(DEFAULT_CHARACTER)
    assert first.name == "Nova"
    assert first.id == second.id  # derived from the name: memory survives restarts


BAD_CHARACTERS = [
    ("missing_name.json", json.dumps({"bio": ["x"]}), "name: Field required"),
    (
        "blank_name.json",
        json.dumps({"name": "   "}),
        "name: Value error, the name must not be blank",
    ),
    ("name_number.json", json.dumps({"name": 42}), "name: Input should be a valid string"),
    ("bio_number.json", json.dumps({"name": "A", "bio": 5}), "bio: Input should be a valid list"),
    (
        "bio_item.json",
        json.dumps({"name": "A", "bio": ["ok", 3]}),
        "bio[1]: Input should be a valid string",
    ),
    (
        "lore_dict.json",
        json.dumps({"name": "A", "lore": {"a": 1}}),
        "lore: Input should be a valid list",
    ),
    (
        "examples_flat.json",
        json.dumps({"name": "A", "messageExamples": [{"user": "u"}]}),
        "messageExamples[0]: Input should be a valid list",
    ),
    (
        "example_no_content.json",
        json.dumps({"name": "A", "messageExamples": [[{"user": "u"}]]}),
        "messageExamples[0][0].content: Field required",
    ),
    (
        "example_no_name.json",
        json.dumps({"name": "A", "messageExamples": [[{"content": {"text": "x"}}]]}),
        "messageExamples[0][0].name: Field required",
    ),
    (
        "style_number.json",
        json.dumps({"name": "A", "style": {"all": 3}}),
        "style.all: Input should be a valid list",
    ),
    (
        "topics_string_list.json",
        json.dumps({"name": "A", "topics": [["x"]]}),
        "topics[0]: Input should be a valid string",
    ),
    (
        "knowledge_bad.json",
        json.dumps({"name": "A", "knowledge": [{"path": "a", "directory": {"path": "b"}}]}),
        "knowledge[0]: Value error, give exactly one of",
    ),
    (
        "settings_list.json",
        json.dumps({"name": "A", "settings": []}),
        "settings: Input should be a valid dictionary",
    ),
    (
        "templates_number.json",
        json.dumps({"name": "A", "templates": {"x": 1}}),
        "templates.x: Input should be a valid string",
    ),
    (
        "top_level_list.json",
        json.dumps([{"name": "A"}]),
        "(top level): expected an object with a 'name', found list",
    ),
    ("broken.json", '{"name": "A",, }', "line 1, column 14: invalid JSON"),
    ("broken.yaml", "name: A\nbio: [unclosed\n", "invalid YAML"),
    ("empty.yaml", "", "(top level): expected an object with a 'name', found NoneType"),
]


@pytest.mark.parametrize(
    ("filename", "text", "expected"), BAD_CHARACTERS, ids=[c[0] for c in BAD_CHARACTERS]
)
def test_malformed_character_gives_file_field_reason(
    tmp_path: Path, filename: str, text: str, expected: str
) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(CharacterError) as caught:
        load_character(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_missing_file_is_a_character_error(tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match="no such file"):
        load_character(tmp_path / "nope.json")


def test_unknown_plugin_names_the_entry_and_the_install_command() -> None:
    character = load_character(CHARACTERS / "trump_v1.json")
    character.plugins.extend(["@elizaos/plugin-anthropic", "carrier-plugin-weather"])
    with pytest.raises(CharacterError) as caught:
        check_plugins(character, ["bootstrap"], source="trump_v1.json")
    message = str(caught.value)
    assert (
        "trump_v1.json: plugins[1]: no plugin named '@elizaos/plugin-anthropic' is "
        "installed; install it with: pip install carrier-plugin-anthropic"
    ) in message
    assert "plugins[2]: no plugin named 'carrier-plugin-weather'" in message
    assert "plugins[0]" not in message


def test_elizaos_plugins_without_an_equivalent_give_one_warning_naming_them_all() -> None:
    character = load_character(CHARACTERS / "eliza_plugins_v1.json")
    with pytest.warns(UnsupportedPluginWarning) as caught:
        check_plugins(character, [], source="eliza_plugins_v1.json")
    assert len(caught) == 1
    warning = caught[0].message
    assert isinstance(warning, CarrierWarning)
    assert str(warning) == (
        "eliza_plugins_v1.json: plugins: Carrier has no equivalent of the ElizaOS plugins "
        "'@elizaos/plugin-node', '@elizaos/plugin-twitter', "
        "'@elizaos-plugins/plugin-image-generation'; the agent runs without them. Remove "
        "them from the character, or install Carrier plugins that provide the entry points "
        "'node', 'twitter', 'image-generation'."
    )


def test_an_elizaos_plugin_is_fine_once_a_carrier_plugin_provides_it() -> None:
    character = load_character(CHARACTERS / "eliza_plugins_v1.json")
    character.plugins[:] = ["@elizaos/plugin-twitter", "@elizaos/plugin-openai"]
    check_plugins(character, ["twitter", "openai"], source="x.json")  # no warning


def test_mapped_elizaos_names_and_carrier_names_still_need_their_plugin() -> None:
    character = load_character(CHARACTERS / "eliza_plugins_v1.json")
    character.plugins[:] = [
        "@elizaos/plugin-node",
        "@elizaos/plugin-sql",
        "@elizaos/plugin-local-ai",
        "weather",
    ]
    with pytest.raises(CharacterError) as caught:
        check_plugins(character, ["bootstrap"], source="x.json")  # errors win: no warning
    assert caught.value.problems == [
        (
            "plugins[1]",
            "no plugin named '@elizaos/plugin-sql' is installed; "
            "install it with: pip install carrier-plugin-sql",
        ),
        (
            "plugins[2]",
            "no plugin named '@elizaos/plugin-local-ai' is installed; "
            "install it with: pip install carrier-plugin-local",
        ),
        (
            "plugins[3]",
            "no plugin named 'weather' is installed; install a distribution that provides "
            "the 'weather' entry point, or remove it from the list",
        ),
    ]


def test_a_plugin_that_failed_to_import_is_reported_with_its_error() -> None:
    character = load_character(CHARACTERS / "trump_v1.json")
    character.plugins.append("openai")
    error = PluginLoadError(
        "bootstrap", "carrier-plugin-bootstrap", ImportError("cannot import name 'x'")
    )
    installed = {
        "bootstrap": PluginInfo(name="bootstrap", error=str(error)),
        "openai": PluginInfo(name="openai"),
    }
    with pytest.raises(CharacterError) as caught:
        check_plugins(character, installed, source="trump_v1.json")
    assert caught.value.problems == [
        (
            "plugins[0]",
            "'@elizaos/plugin-bootstrap' is installed but failed to load: Plugin 'bootstrap' "
            "from distribution 'carrier-plugin-bootstrap' failed to load: ImportError: "
            "cannot import name 'x'. It was skipped; fix or reinstall it, or disable it "
            "with CARRIER_DISABLE_PLUGINS=bootstrap.",
        )
    ]
    # the same through ``failed``, when only names are at hand
    with pytest.raises(CharacterError, match="'openai' is installed but failed to load: boom"):
        check_plugins(character, ["bootstrap"], source="x", failed={"openai": "boom"})


async def test_a_runtime_starts_with_the_warning(host: PluginHost) -> None:
    character = load_character(CHARACTERS / "eliza_plugins_v1.json")
    runtime = AgentRuntime(character, host=host, models={"embedding": None})
    with pytest.warns(UnsupportedPluginWarning, match="'@elizaos/plugin-node'"):
        await runtime.start()
    try:
        assert runtime.executor is not None
    finally:
        await runtime.stop()


def test_the_source_path_is_kept_but_not_dumped() -> None:
    character = load_character(CHARACTERS / "ada_v2.json")
    assert character.source_path == (CHARACTERS / "ada_v2.json").resolve()
    assert "source_path" not in character.model_dump()
