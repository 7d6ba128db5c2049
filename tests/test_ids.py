"""Memory ids: fresh ones are unguessable and grow with time; seeded ones are stable."""

from __future__ import annotations

import time
import uuid

from carrier.types import Content, Memory, new_id


def test_fresh_ids_are_version_7_uuids_that_grow_with_time() -> None:
    earlier = [new_id() for _ in range(1000)]
    time.sleep(0.002)  # the next millisecond at least
    later = new_id()
    parsed = [uuid.UUID(found) for found in [*earlier, later]]
    assert {found.version for found in parsed} == {7}
    assert {found.variant for found in parsed} == {uuid.RFC_4122}
    assert len(set(earlier)) == len(earlier)
    assert all(found < later for found in earlier)
    # the leading 48 bits are the Unix millisecond it was made
    assert abs((parsed[-1].int >> 80) - time.time() * 1000) < 5_000


def test_ids_made_in_one_millisecond_differ_in_74_random_bits() -> None:
    ids = [uuid.UUID(new_id()).int for _ in range(2000)]
    random_parts = {found & ((1 << 76) - 1) & ~(0b11 << 62) for found in ids}
    assert len(random_parts) == len(ids)


def test_seeded_ids_are_stable_and_a_memory_gets_a_fresh_one() -> None:
    assert new_id("telegram:42:7") == new_id("telegram:42:7")
    assert uuid.UUID(new_id("telegram:42:7")).version == 5
    first, second = (
        Memory(agent_id="a", entity_id="u", room_id="r", content=Content(text="hi")),
        Memory(agent_id="a", entity_id="u", room_id="r", content=Content(text="hi")),
    )
    assert first.id != second.id
    assert uuid.UUID(first.id).version == 7
