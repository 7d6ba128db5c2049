"""Admission: how a client's message enters the loop (stages 2-3) and who may use a room.

``receive`` turns an ``IncomingMessage`` into a ``Memory`` (refusing oversized text and
rooms the sender may not use); ``connect`` creates the entity, room and participant
records once, atomically for a new room, and sets the message's scope from the stored
room (docs/scope.md).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from carrier.emitting import Emitting
from carrier.errors import AccessError, InputError
from carrier.storable import UNSTORABLE
from carrier.types import (
    DIRECT_ROOM_TYPES,
    Content,
    Entity,
    EventType,
    IncomingMessage,
    Memory,
    MemoryScope,
    MemoryType,
    Participant,
    Room,
    SearchScope,
)

if TYPE_CHECKING:
    from carrier.protocols import MemoryStore
    from carrier.settings import CarrierSettings

__all__ = ["Admission"]

_CACHE_LIMIT = 50_000
#: The fields of ``IncomingMessage`` a sender may fill; metadata is the client's own.
_SENT_FIELDS = (
    "text",
    "user_id",
    "user_name",
    "room_id",
    "world_id",
    "message_id",
    "in_reply_to",
    "source",
)


class Admission(Emitting):
    """Stages 2-3 and room access; the base of ``Composing`` (:mod:`carrier.composing`)."""

    settings: CarrierSettings
    agent_id: str
    _connected: set[tuple[str, str]]
    _rooms: dict[str, Room]
    _actors: dict[str, list[Entity]]
    #: Entities read or written here, by id: a room first met here reads only the
    #: entities of members not among them (a user opening many rooms is read once).
    _entities: dict[str, Entity]

    @property
    @abstractmethod
    def store(self) -> MemoryStore:
        """The started runtime's store."""

    def room_id_for(self, incoming: IncomingMessage) -> str:
        """The room an incoming message belongs to: its own, or the sender's default
        room ``default-room-{agent_id}-{user_id}`` (one per user, never shared)."""
        return incoming.room_id or f"default-room-{self.agent_id}-{incoming.user_id}"

    def system_room(self, kind: str) -> str:
        """The id of a room the runtime keeps for itself (``knowledge``, ``autonomous``,
        ...): ``"{kind}-{agent_id}"``, reserved (:meth:`is_reserved_room`)."""
        return f"{kind}-{self.agent_id}"

    def is_reserved_room(self, room_id: str) -> bool:
        """Whether ``room_id`` is one the runtime uses for itself: the agent's id, or any
        id ending in ``-{agent_id}`` (every :meth:`system_room`, present and future, and
        the default room all users once shared). Users can neither post into nor read
        them; clients refuse them with 403."""
        return room_id == self.agent_id or room_id.endswith(f"-{self.agent_id}")

    def refuse_oversized(self, text: str) -> None:
        """Raise ``InputError`` if ``text`` is over ``CARRIER_MAX_MESSAGE_CHARS``, as
        :meth:`receive` does; a client may call it before doing work for a message."""
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise InputError(
                f"The message has {len(text):,} characters; this agent accepts at "
                f"most {limit:,} (CARRIER_MAX_MESSAGE_CHARS). Split it or send it as a file."
            )

    def refuse_unstorable(self, incoming: IncomingMessage) -> None:
        """Raise ``InputError`` if a field the sender filled (its text, ids, name,
        source, an attachment's fields) holds a character no store can keep, as
        :meth:`receive` does: NUL (PostgreSQL refuses it) or a lone surrogate (UTF-8
        cannot encode it). The metadata is the client's own and is not checked."""
        _refuse_unstorable(incoming)

    def receive(self, incoming: IncomingMessage) -> Memory:
        """Stage 2: a client's message becomes a ``Memory``.

        Raises ``InputError`` (nothing stored) for a message over
        ``CARRIER_MAX_MESSAGE_CHARS``, or with a character no store can keep.
        """
        self.refuse_oversized(incoming.text)
        self.refuse_unstorable(incoming)
        room_id = self.room_id_for(incoming)
        if incoming.user_id != self.agent_id and self.is_reserved_room(room_id):
            raise AccessError(
                f"Room {room_id!r} is reserved for the agent itself; users cannot post "
                f"into it. Send the message without a room id, or to a room of your own."
            )
        defaults = f"default-room-{self.agent_id}-"
        if room_id.startswith(defaults) and room_id != f"{defaults}{incoming.user_id}":
            raise AccessError(
                f"Room {room_id!r} is another user's default room. Send the message "
                f"without a room id to use your own."
            )
        # The client's metadata first: the fields below are the runtime's, and the
        # sender's role in particular is set once, by the client, from data it trusts.
        metadata: dict[str, Any] = dict(incoming.metadata)
        metadata["room_type"] = incoming.room_type.value
        metadata["role"] = incoming.role.value
        if incoming.user_name:
            metadata["user_name"] = incoming.user_name
        else:
            metadata.pop("user_name", None)
        fields: dict[str, Any] = {}
        if incoming.message_id:
            fields["id"] = incoming.message_id
        return Memory(
            agent_id=self.agent_id,
            entity_id=incoming.user_id,
            room_id=room_id,
            world_id=incoming.world_id,
            type=MemoryType.MESSAGE,
            content=Content(
                text=incoming.text,
                source=incoming.source,
                attachments=incoming.attachments,
                in_reply_to=incoming.in_reply_to,
            ),
            metadata=metadata,
            **fields,
        )

    async def connect(self, message: Memory, incoming: IncomingMessage) -> Room:
        """Stage 3: entity, room and participant records exist (created once, cached).

        A new room is created atomically (``MemoryStore.create_room``): of two senders
        racing for one id, one creates it. A direct room belongs to the user who
        created it; anyone else gets ``AccessError`` (nothing stored). The message's
        scope follows the stored room: ``DIRECT`` in a direct room, else ``ROOM``.
        """
        started = time.perf_counter()
        key = (message.entity_id, message.room_id)
        room = self._rooms.get(message.room_id)
        if key not in self._connected or room is None:
            room = await self._connect_once(message, incoming)
        message.scope = (
            MemoryScope.DIRECT
            if room.direct and message.entity_id != self.agent_id
            else MemoryScope.ROOM
        )
        await self.emit(EventType.CONNECTED, message, (time.perf_counter() - started) * 1000)
        return room

    async def _connect_once(self, message: Memory, incoming: IncomingMessage) -> Room:
        """The records of a sender's first message in a room (in this process)."""
        store = self.store
        # one read where the store can: the room, its participants and their entities
        room, participants, actors = await store.get_room_with_actors(message.room_id)
        created = False
        names = [incoming.user_name] if incoming.user_name else [message.entity_id]
        user = Entity(id=message.entity_id, agent_id=self.agent_id, names=names)
        members = [
            Participant(room_id=message.room_id, entity_id=message.entity_id, role=incoming.role),
            Participant(room_id=message.room_id, entity_id=self.agent_id),
        ]
        if room is None:
            room = Room(
                id=message.room_id,
                agent_id=self.agent_id,
                source=incoming.source,
                type=incoming.room_type,
                world_id=incoming.world_id,
                name=incoming.room_id,
                owner_id=message.entity_id if incoming.room_type in DIRECT_ROOM_TYPES else None,
            )
            created = await store.create_room_with(room, members)
            if not created:  # the race's winner: its room and whoever joined since
                found, participants, actors = await store.get_room_with_actors(room.id)
                room = found or room
        await self._check_access(room, message.entity_id, participants)
        # a room this call created has its members already, and no actors read yet
        await self._join(room, user, members, members if created else participants, actors)
        if len(self._connected) > _CACHE_LIMIT:
            self._connected.clear()
            self._rooms.clear()
            self._actors.clear()
            self._entities.clear()
        self._connected.add((message.entity_id, room.id))
        self._rooms[room.id] = room
        return room

    async def _join(
        self,
        room: Room,
        user: Entity,
        members: list[Participant],
        participants: list[Participant],
        actors: list[Entity],
    ) -> None:
        """A room first met here (created now, or by another process before), with its
        ``participants`` and their entities (``actors``) as read with it: they fill the
        actors cache; a write only for a missing participant or a new or renamed sender
        (whose other entity data stays: the write starts from the stored entity, read
        again if it came from this process's cache)."""
        store = self.store
        ids = [p.entity_id for p in participants]
        missing = [m for m in members if m.entity_id not in ids]
        ids += [m.entity_id for m in missing]
        known = {a.id for a in actors}
        unread = [m.entity_id for m in members if m.entity_id not in known]
        cached = {i: self._entities[i] for i in unread if i in self._entities}
        if unread:  # the sender or the agent joins, or the room was just created: their
            # entities may exist already
            uncached = [i for i in unread if i not in cached]
            joining = [*cached.values(), *(await store.get_entities(uncached) if uncached else [])]
            found = {a.id: a for a in actors} | {e.id: e for e in joining}
            actors = [found[i] for i in ids if i in found]
        stored = next((a for a in actors if a.id == user.id), None)
        if stored is not None and user.id in cached and _renamed(stored, user):
            stored = next(iter(await store.get_entities([user.id])), None)  # as it is now
        if stored is None or _renamed(stored, user):
            if stored is not None:
                user = user.model_copy(update={"metadata": stored.metadata})
            await store.upsert_entity(user)
            stored = user
        found = {a.id: a for a in actors} | {user.id: stored}
        actors = [found[i] for i in ids if i in found]
        for member in missing:
            await store.upsert_participant(member)
        self._actors[room.id] = actors
        self._entities.update((a.id, a) for a in actors)

    async def _actors_of(self, entity_ids: list[str]) -> list[Entity]:
        """The entities of ``entity_ids`` that exist, in that order (a room's actors are
        its participants' entities, in the store's participant order)."""
        found = {e.id: e for e in await self.store.get_entities(entity_ids)}
        return [found[i] for i in entity_ids if i in found]

    async def _check_access(
        self, room: Room, entity_id: str, participants: list[Participant]
    ) -> None:
        """Refuse a user who is not the one user of a direct room (``participants``:
        the room's, as read with it)."""
        if not room.direct or entity_id == self.agent_id:
            return
        owner = room.owner_id
        if owner is None:  # a room from before owners were recorded: its participants
            users = [p.entity_id for p in participants if p.entity_id != self.agent_id]
            owner = users[0] if users else entity_id
        if owner != entity_id:
            raise AccessError(
                f"Room {room.id!r} is a direct conversation with another user; nobody "
                f"else can join it. Send the message without a room id, or to a room "
                f"of your own."
            )

    def scope_for(self, message: Memory, room: Room) -> SearchScope:
        """What a prompt answering ``message`` in ``room`` may see (``docs/scope.md``)."""
        return SearchScope(room_id=room.id, entity_id=message.entity_id, direct=room.direct)


def _texts(name: str, value: Any) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` (nested in dicts and lists too), with where it is."""
    if isinstance(value, str):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(f"{name}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _texts(f"{name}[{index}]", item)


def _refuse_unstorable(incoming: IncomingMessage) -> None:
    fields: list[tuple[str, Any]] = [(name, getattr(incoming, name)) for name in _SENT_FIELDS]
    for index, attachment in enumerate(incoming.attachments):
        fields.extend(_texts(f"attachments[{index}]", attachment.model_dump()))
    for name, value in fields:
        found = UNSTORABLE.search(value) if isinstance(value, str) else None
        if found is not None:
            character = found.group()
            what = (
                "a NUL character (\\x00)"
                if character == "\x00"
                else f"a lone surrogate (\\u{ord(character):04x})"
            )
            raise InputError(
                f"The message's {name} holds {what} at position {found.start()}, which "
                f"cannot be stored. Remove it and send the message again."
            )


def _renamed(stored: Entity, user: Entity) -> bool:
    """Whether the sender's names (or agent) differ from its stored entity's."""
    return (stored.names, stored.agent_id) != (user.names, user.agent_id)
