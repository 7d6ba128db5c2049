"""``carrier.forgetting.forget``: one user's memories in one room go, nothing else."""

from __future__ import annotations

from carrier.builtin.memory_store import InMemoryStore
from carrier.forgetting import forget
from carrier.types import Content, Memory, MemoryType

AGENT = "agent-1"


def _memory(memory_id: str, entity: str, room: str, text: str, **more: object) -> Memory:
    return Memory(
        id=memory_id,
        agent_id=AGENT,
        entity_id=entity,
        room_id=room,
        content=Content(text=text),
        **more,  # type: ignore[arg-type]
    )


async def test_forget_removes_the_users_memories_and_answers_in_that_room_only() -> None:
    async with InMemoryStore() as store:
        memories = [
            _memory("m1", "alice", "room-a", "my cat is Tom"),
            _memory(f"m1-{AGENT}", AGENT, "room-a", "Nice cat!"),
            _memory("f1", "alice", "room-a", "Alice has a cat", type=MemoryType.FACT),
            _memory("m2", "bob", "room-a", "my dog is Rex"),
            _memory(f"m2-{AGENT}", AGENT, "room-a", "Nice dog!"),
            _memory("m3", "alice", "room-b", "I live in Oslo"),
        ]
        for memory in memories:
            await store.create_memory(memory)
        deleted = await forget(store, agent_id=AGENT, entity_id="alice", room_id="room-a")
        left = {m.id for m in await store.get_memories(agent_id=AGENT, limit=100)}
        left |= {
            m.id for m in await store.get_memories(agent_id=AGENT, type=MemoryType.FACT, limit=100)
        }
        again = await forget(store, agent_id=AGENT, entity_id="alice", room_id="room-a")
    assert deleted == 3
    assert left == {"m2", f"m2-{AGENT}", "m3"}
    assert again == 0
