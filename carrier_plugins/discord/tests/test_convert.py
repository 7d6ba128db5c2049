"""Pure mapping between Discord's snowflakes and Carrier's ids."""

from __future__ import annotations

from carrier_plugin_discord import convert

BOT = 42


def test_ids_carry_the_bot_so_two_agents_never_share_a_message_id() -> None:
    assert convert.room_id(BOT, 7) == "discord:42:7"
    assert convert.world_id(BOT, 9) == "discord:42:guild:9"
    assert convert.message_id(BOT, 7, 100) == "discord:42:7:100"
    assert convert.message_id(43, 7, 100) != convert.message_id(BOT, 7, 100)
    assert convert.user_id(5) == "discord:5"


def test_a_room_maps_back_to_its_channel_for_its_own_bot_only() -> None:
    assert convert.channel_of(convert.room_id(BOT, 7), BOT) == 7
    assert convert.channel_of(convert.room_id(BOT, 7), 43) is None
    assert convert.channel_of("telegram:42:7", BOT) is None
    assert convert.channel_of(convert.world_id(BOT, 9), BOT) is None
    assert convert.channel_of("discord:42:x", BOT) is None


def test_a_thread_counts_as_its_parent_channel() -> None:
    class Thread:
        id = 11
        parent_id = 10

    class Channel:
        id = 10

    assert convert.parent_channel(Thread()) == 10
    assert convert.parent_channel(Channel()) == 10
    assert convert.parent_channel(object()) is None
