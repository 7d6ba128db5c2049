"""A room's history turns are built once (carrier.room_history): each request builds
only its new messages, and sends exactly what a build from scratch would."""

from __future__ import annotations

from carrier.character import Character
from carrier.layout import HistoryWindow, compose_request
from carrier.prompts import TurnCache
from carrier.room_history import RoomHistories
from carrier.types import ChatMessage, Content, Entity, Memory, Room, RoomType, State


def _count(text: str) -> int:
    return len(text.split())


def _memory(n: int, room: str, entity: str, text: str | None = None) -> Memory:
    return Memory(
        id=f"{room}-m{n}",
        agent_id="agent",
        entity_id=entity,
        room_id=room,
        content=Content(text=text or f"message {n} in {room} from {entity}"),
        created_at=float(n),
    )


def _state(room: str, history: list[Memory], new: Memory, *, group: bool = False) -> State:
    users = {m.entity_id for m in history if m.entity_id != "agent"} | {new.entity_id}
    return State(
        agent_id="agent",
        agent_name="Ada",
        room=Room(id=room, agent_id="agent", type=RoomType.GROUP if group else RoomType.DIRECT),
        message=new,
        recent_messages=[*history, new],
        actors=[Entity(id=u, agent_id="agent", names=[f"Name of {u}"]) for u in sorted(users)],
    )


def _request(state: State, cache: TurnCache | None, window: HistoryWindow) -> list[ChatMessage]:
    request = compose_request(
        state,
        Character(name="Ada"),
        max_prompt_tokens=100_000,
        count_tokens=_count,
        turns=cache,
        window=window,
    )
    return request.messages


def _conversation(turns: int, cache: TurnCache, *, group: bool = False) -> None:
    """Two users, each in their own room, interleaved; every request equals the one a
    fresh cache builds, and holds only its own room's messages."""
    windows = {"ada": HistoryWindow(limit=60), "bob": HistoryWindow(limit=60)}
    fresh_windows = {"ada": HistoryWindow(limit=60), "bob": HistoryWindow(limit=60)}
    rooms: dict[str, list[Memory]] = {"ada": [], "bob": []}
    for n in range(turns):
        for user, history in rooms.items():
            room = f"room-{user}"
            new = _memory(2 * n, room, user)
            fetched = history[-59:]  # what the runtime fetches (the limit, the new one too)
            state = _state(room, fetched, new, group=group)
            sent = _request(state, cache, windows[user])
            assert sent == _request(state, None, fresh_windows[user])
            assert all(room in m.content or "Thanks" in m.content for m in sent)
            other = "bob" if user == "ada" else "ada"
            assert not any(f"room-{other}" in m.content for m in sent)
            history.extend([new, _memory(2 * n + 1, room, "agent", f"Thanks {user}, {n}.")])


def test_each_request_builds_only_its_new_messages_and_sends_what_a_fresh_build_would() -> None:
    cache = TurnCache(_count)
    _conversation(80, cache)  # past the limit of 60: the window drops blocks
    rooms = cache.rooms
    assert len(rooms) == 2
    # each request built its one new exchange (and the first request's nothing)
    assert rooms.built <= 2 * 2 * 80
    assert rooms.reused > 10 * rooms.built


def test_in_a_group_room_the_speakers_are_named_and_reused_the_same_way() -> None:
    cache = TurnCache(_count)
    _conversation(30, cache, group=True)
    assert cache.rooms.reused > 5 * cache.rooms.built


def test_an_edited_memory_or_a_renamed_speaker_rebuilds_the_window() -> None:
    cache = TurnCache(_count)
    window = HistoryWindow()
    history = [_memory(n, "r", "u" if n % 2 == 0 else "agent") for n in range(6)]
    _request(_state("r", history, _memory(6, "r", "u"), group=True), cache, window)
    edited = history[2].model_copy(update={"content": Content(text="an edited text")})
    state = _state("r", [*history[:2], edited, *history[3:]], _memory(7, "r", "u"), group=True)
    sent = _request(state, cache, window)
    assert "Name of u: an edited text" in [m.content for m in sent]
    renamed = state.model_copy(update={"actors": [Entity(id="u", agent_id="agent", names=["Uma"])]})
    sent = _request(renamed, cache, window)
    assert sent[0].content == "Uma: message 0 in r from u"
    assert not any("Name of u" in m.content for m in sent)


def test_the_rooms_are_bounded_by_bytes_and_the_least_recent_go_first() -> None:
    histories = RoomHistories(max_bytes=3000)
    built = []

    def turn(memory: Memory) -> tuple[ChatMessage, int]:
        built.append(memory.id)
        return ChatMessage(role="user", content=memory.content.text or ""), 1

    for room in ("a", "b", "c", "a"):
        memories = [_memory(n, room, "u") for n in range(5)]  # ~1,100 bytes each
        histories.build(room, (), memories, turn)
    assert histories.bytes <= histories.max_bytes
    assert len(histories) == 2  # "b" went first, then "a" came back, "c" stayed
    histories.build("c", (), [_memory(n, "c", "u") for n in range(6)], turn)
    assert built[-1] == "c-m5"
    assert len(built) == 5 + 5 + 5 + 5 + 1


def test_copies_from_a_store_without_a_cache_are_reused_by_id_and_text() -> None:
    cache, window, fresh = TurnCache(_count), HistoryWindow(), HistoryWindow()
    history: list[Memory] = []
    for n in range(20):
        copies = [m.model_copy() for m in history]  # new objects every read
        state = _state("r", copies, _memory(2 * n, "r", "u"))
        assert _request(state, cache, window) == _request(state, None, fresh)
        history += [_memory(2 * n, "r", "u"), _memory(2 * n + 1, "r", "agent", f"Answer {n}.")]
    assert cache.rooms.reused > 5 * cache.rooms.built


def test_a_message_without_text_is_left_out_and_the_next_request_is_still_right() -> None:
    cache, window, fresh = TurnCache(_count), HistoryWindow(), HistoryWindow()
    history = [_memory(n, "r", "u" if n % 2 == 0 else "agent") for n in range(4)]
    history[1] = history[1].model_copy(update={"content": Content(actions=["REACT"])})
    for n in range(4, 8, 2):
        state = _state("r", history, _memory(n, "r", "u"))
        sent = _request(state, cache, window)
        assert sent == _request(state, None, fresh)
        assert len(sent) == len(history)  # the text-less one is not a turn; the new one is
        history += [_memory(n, "r", "u"), _memory(n + 1, "r", "agent")]


def test_a_window_over_its_token_budget_opens_at_a_users_message() -> None:
    """Ada's and Bob's rooms, with a budget that drops a block every few turns: each
    window's first turn is the user's, never an answer whose question was dropped (chat
    templates expect it, and llama.cpp's chunk reuse kept missing without it)."""
    window = HistoryWindow(limit=60)
    rooms: dict[str, list[Memory]] = {"ada": [], "bob": []}
    firsts: dict[str, set[str]] = {"ada": set(), "bob": set()}
    for n in range(40):
        for user, history in rooms.items():
            room = f"room-{user}"
            new = _memory(2 * n, room, user)
            request = compose_request(
                _state(room, history[-59:], new),
                Character(name="Ada"),
                max_prompt_tokens=120,  # about 9 exchanges of history, then a drop
                count_tokens=_count,
                window=window,
            )
            history_sent = request.messages[:-1]
            if history_sent:
                assert history_sent[0].role == "user"
                assert history_sent[0].content.startswith("message")
                firsts[user].add(history_sent[0].content)
            assert all(room in m.content or "Thanks" in m.content for m in request.messages)
            history.extend([new, _memory(2 * n + 1, room, "agent", f"Thanks {user}, {n}.")])
    assert all(len(starts) > 3 for starts in firsts.values())  # the window dropped blocks
    assert window.drops > 6
