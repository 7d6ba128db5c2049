"""What exactly-once recording costs on PostgreSQL: the statements (round trips) it adds
to a message, counted by asyncpg's query logger on a real server. A message's lease
is written with the message, the last action call's outcome with the reply, so
recording adds one round trip to a message without actions (the release) and two to a
message with one action call (its step record and the release); an agent without
evaluators releases the lease with the reply, one round trip fewer."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from carrier_plugin_sql.postgres import PostgresStore, register_vector_codec
from carrier_plugin_sql.testing import fresh_database
from pydantic import BaseModel

import carrier
from carrier import AgentRuntime, IncomingMessage, PluginHost
from carrier.character import Character
from carrier.protocols import Action, Evaluator
from carrier.settings import CarrierSettings
from carrier.testing.fakes import FunctionModel
from carrier.types import (
    ActionCall,
    ActionResult,
    Content,
    Entity,
    EvaluatorResult,
    Memory,
    ModelRequest,
    ModelResponse,
    RoomType,
    SearchScope,
    State,
)


class NoteAction(Action):
    name = "NOTE"
    description = "Takes a note."

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        return ActionResult(name=self.name, text="noted")


class NotePlugin:
    @carrier.hookimpl
    def carrier_register_actions(self, actions: Any) -> None:
        actions.add("NOTE", NoteAction)


class LengthEvaluator(Evaluator):
    name = "length"

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, responses: list[Memory]
    ) -> EvaluatorResult:
        return EvaluatorResult(name=self.name, data={"length": len(message.content.text)})


class EvaluatorPlugin:
    @carrier.hookimpl
    def carrier_register_evaluators(self, evaluators: Any) -> None:
        evaluators.add("length", LengthEvaluator)


def answering(request: ModelRequest) -> ModelResponse:
    """Calls NOTE when the message asks for a note, else only answers."""
    wants_note = "note" in request.messages[-1].content
    if request.metadata.get("step") == 0 and request.actions and wants_note:
        return ModelResponse(text="Noted.", action_calls=[ActionCall(name="NOTE")])
    return ModelResponse(text="Hello.")


class CountingStore(PostgresStore):
    """Logs every statement the store sends (asyncpg's query logger)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.statements: list[str] = []

    def _connection(self, op: str) -> Any:
        return _Logged(super()._connection(op), self.statements)


class _Logged:
    def __init__(self, inner: Any, log: list[str]) -> None:
        self._inner, self._log, self._conn = inner, log, None

    def _logged(self, record: Any) -> None:
        self._log.append(record.query)

    async def __aenter__(self) -> Any:
        self._conn = await self._inner.__aenter__()
        self._conn.add_query_logger(self._logged)
        return self._conn

    async def __aexit__(self, *exc: Any) -> None:
        assert self._conn is not None
        self._conn.remove_query_logger(self._logged)
        await self._inner.__aexit__(*exc)


async def statements_per_message(
    url: str, *, record_steps: bool, evaluators: bool
) -> dict[str, int]:
    """Statements of Ada's and Bob's second messages (their rooms already exist): Ada's
    asks for a note (one action call), Bob's does not."""
    settings = CarrierSettings(_env_file=None, record_steps=record_steps)
    host = PluginHost(settings=settings, autoload=False)
    host.register(NotePlugin(), name="notes")
    if evaluators:
        host.register(EvaluatorPlugin(), name="evaluators")
    model = FunctionModel(answering)
    counts: dict[str, int] = {}
    async with CountingStore(url) as store:
        runtime = AgentRuntime(
            Character(name="Nova", bio=["Takes notes."]),
            host=host,
            store=store,
            models={"large": model, "small": model, "embedding": None},
        )
        async with runtime:
            for user, text in (("ada", "please take a note"), ("bob", "hi there")):
                first = await runtime.handle(
                    IncomingMessage(text=f"{text} (1)", user_id=user, room_id=f"dm-{user}")
                )
                await first.evaluated()
                before = len(store.statements)
                reply = await runtime.handle(
                    IncomingMessage(text=f"{text} (2)", user_id=user, room_id=f"dm-{user}")
                )
                await reply.evaluated()
                assert reply.error is None
                assert reply.texts == ["Noted." if user == "ada" else "Hello."]
                counts[user] = len(store.statements) - before
    return counts


@pytest.mark.parametrize("evaluators", [True, False], ids=["evaluators", "no-evaluators"])
async def test_recording_adds_at_most_two_round_trips_per_message(
    postgres_url: str, evaluators: bool
) -> None:
    async with fresh_database(postgres_url) as url:
        recorded = await statements_per_message(url, record_steps=True, evaluators=evaluators)
    async with fresh_database(postgres_url) as url:
        plain = await statements_per_message(url, record_steps=False, evaluators=evaluators)
    release = 1 if evaluators else 0  # after the evaluators, else with the reply
    # Ada's message calls one action: its step record (and the release)
    assert recorded["ada"] - plain["ada"] == 1 + release, (recorded, plain)
    # Bob's has no action: the release only
    assert recorded["bob"] - plain["bob"] == release, (recorded, plain)


async def test_a_message_in_a_room_met_before_is_two_round_trips(postgres_url: str) -> None:
    """Bob's message: the message with its lease and the turn's read (the agent's
    participation, goals, history, open choices: MemoryStore.create_memory_reading_turn,
    one statement), then the reply with the lease's release. Ada's calls one action:
    its step record is one more."""
    async with fresh_database(postgres_url) as url:
        counts = await statements_per_message(url, record_steps=True, evaluators=False)
    assert counts == {"ada": 3, "bob": 2}


def said_by(user: str, memory_id: str, text: str, vector: list[float]) -> Memory:
    """``user``'s message in their direct room, with an embedding."""
    return Memory(
        id=memory_id,
        agent_id="nova",
        entity_id=user,
        room_id=f"dm-{user}",
        content=Content(text=text),
        embedding=vector,
    )


async def test_reads_by_id_and_scoped_searches_need_no_type_lookup(database: str) -> None:
    """Lists of ids and of rows go as ``text[]``, a type asyncpg knows: ``varchar[]`` and
    ``bigint[]`` made every new pool connection look the type up first (a recursive
    catalogue query, ~10 ms of the server's time, on each worker's first read of
    entities or a reply, and on its first scoped search)."""
    async with PostgresStore(database) as writer:
        for user, vector in (("ada", [1.0, 0.0, 0.0]), ("bob", [0.0, 1.0, 0.0])):
            await writer.upsert_entity(Entity(id=user, agent_id="nova", names=[user.title()]))
            await writer.create_memory(said_by(user, f"m-{user}", f"hello from {user}", vector))
    async with CountingStore(database) as store:  # a new pool: new connections
        entities = await store.get_entities(["ada", "bob"])
        memories = await store.get_memories_by_id(["m-bob", "m-ada"])
        reads = len(store.statements)
        found = {
            user: await store.search_memories(
                agent_id="nova",
                embedding=[0.7, 0.7, 0.0],  # as close to both
                threshold=0.1,
                scope=SearchScope(room_id=f"dm-{user}", entity_id=user, direct=True),
            )
            for user in ("ada", "bob")
        }
    assert [e.names for e in entities] == [["Ada"], ["Bob"]]
    assert [m.content.text for m in memories] == ["hello from bob", "hello from ada"]
    assert reads == 2, store.statements
    assert {user: [h.memory.id for h in hits] for user, hits in found.items()} == {
        "ada": ["m-ada"],
        "bob": ["m-bob"],
    }
    assert not [q for q in store.statements if "pg_type" in q or "typeinfo" in q], store.statements


async def test_a_process_meets_a_room_that_exists_in_one_read(postgres_url: str) -> None:
    """Each worker meets each room once: a room another process made, with Ada and Bob
    in it, costs the next process one read (the room, its participants and their
    entities together), not three; and both are still its actors."""
    model = FunctionModel(answering)
    models: dict[str, Any] = {"large": model, "small": model, "embedding": None}
    nova = Character(name="Nova", bio=["Takes notes."])

    def said(user: str, text: str) -> IncomingMessage:
        return IncomingMessage(
            text=text,
            user_id=user,
            user_name=user.title(),
            room_id="lounge",
            room_type=RoomType.GROUP,
        )

    def runtime_on(store: PostgresStore) -> AgentRuntime:
        return AgentRuntime(nova, host=PluginHost(autoload=False), store=store, models=models)

    async with fresh_database(postgres_url) as url:
        async with PostgresStore(url) as store, runtime_on(store) as first:
            for user in ("ada", "bob"):
                await (await first.handle(said(user, f"Nova, I am {user}"))).evaluated()
        async with CountingStore(url) as store, runtime_on(store) as second:  # nothing cached
            before = len(store.statements)
            reply = await second.handle(said("ada", "Nova, who is here?"))
            await reply.evaluated()
            met = [  # not the turn's read (the agent's participation, with every message)
                q
                for q in store.statements[before:]
                if "AS cached" not in q
                and (
                    "FROM rooms" in q
                    or "FROM entities" in q
                    or ("FROM participants" in q and "entity_id = $2" not in q)
                )
            ]
    assert reply.texts == ["Hello."]
    assert len(met) == 1, met
    # both are the room's actors: the answer stops where either would speak next
    assert {"\nAda:", "\nBob:"} <= set(model.requests[-1].stop)


async def test_a_new_connection_looks_up_one_type(database: str) -> None:
    """A pool connection registers pgvector's ``vector`` codec with one catalogue read
    (pgvector's own helper made three: ``halfvec`` and ``sparsevec`` too), and vectors
    still go both ways in binary."""
    async with PostgresStore(database) as store:  # creates the extension; its pool uses it
        for user, vector in (("ada", [1.0, 0.0]), ("bob", [0.0, 1.0])):
            await store.create_memory(said_by(user, f"v-{user}", f"vector of {user}", vector))
        found = await store.get_memories_by_id(["v-ada", "v-bob"])
    assert {m.id: m.embedding for m in found} == {"v-ada": [1.0, 0.0], "v-bob": [0.0, 1.0]}
    conn = await asyncpg.connect(database)
    try:
        queries: list[str] = []
        conn.add_query_logger(lambda record: queries.append(record.query))
        await register_vector_codec(conn)
        back = await conn.fetchval("SELECT $1::vector", [0.5, 1.0, -2.0])
    finally:
        await conn.close()
    lookups = [q for q in queries if "pg_type" in q]  # the logger reports after the fact
    assert len(lookups) == 1, queries
    assert back.to_list() == [0.5, 1.0, -2.0]
