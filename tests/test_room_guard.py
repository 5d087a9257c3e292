"""The membership guard and dossier-room requests on a real database (SQLite and PostgreSQL),
without a homeserver: who is cleared for which room, one report per stay however often an
event is replayed, removals only from dossier rooms, revocations found by the roles version."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from nio import JoinedRoomsResponse, RoomCreateError, RoomGetStateResponse, RoomMemberEvent

from bot.backoff import Backoff
from bot.guard import MembershipSweep
from bot.pipeline import Pipeline, membership_episode
from bot.render import CREATE_ROOM, KICK, MESSAGE, room_request
from bot.sender import Sender
from commands import Severity
from commands.replies import RoomKey
from config import Role
from storage import audit, dossiers, outbox
from storage.db import Database
from storage.store import Store
from tests.support.chat import Chat, text_of
from tests.support.pipeline import FixedClock, pipeline_for
from tests.support.rooms import make_audience, rooms_with
from workflow import AccessPolicy, RuntimeInfo
from workflow.access import Data
from workflow.membership import GuardedRoom, configured_room, dossier_room

BOT = "@aegis:aegis.test"
ADMIN = "@adm:aegis.test"
LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
POLICE = "@police:aegis.test"
WARNER = "@warner:aegis.test"
NOBODY = "@nobody:aegis.test"
BRIDGE = "@bridge:aegis.test"
FOREIGN = "@lia:elsewhere.example"
DOSSIER_ROOM = "!dossier-room"
ROOMS = {key: f"!{key.value}" for key in RoomKey}

SEED = {
    ADMIN: frozenset({Role.ADMIN}),
    LIAISON: frozenset({Role.LIAISON}),
    POLICE: frozenset({Role.POLICE}),
    WARNER: frozenset({Role.WARNING_APPROVER}),
    FOREIGN: frozenset({Role.LIAISON}),
}


def make_pipeline(db: Database, remove_uncleared: bool = True) -> Pipeline:
    access = AccessPolicy(
        SEED,
        frozenset(),
        "aegis.test",
        service_accounts=frozenset({BRIDGE}),
        remove_uncleared=remove_uncleared,
    )
    # The guard's warnings name user IDs only: the room state they pass through is the bot's.
    state = rooms_with([*ROOMS.values(), DOSSIER_ROOM], BOT)
    return pipeline_for(db, __name__, access, ROOMS, state, BOT)


def member(
    event_id: str,
    user: str,
    membership: str,
    sender: str = ADMIN,
    previous: str | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
    unsigned: dict[str, Any] = {}
    if previous is not None:
        unsigned["prev_content"] = {"membership": previous}
    if replaces is not None:
        unsigned["replaces_state"] = replaces
    return {
        "type": "m.room.member",
        "event_id": event_id,
        "sender": sender,
        "state_key": user,
        "origin_server_ts": 1,
        "content": {"membership": membership},
        "unsigned": unsigned,
    }


def event(source: dict[str, Any]) -> RoomMemberEvent:
    parsed = RoomMemberEvent.from_dict(source)
    assert isinstance(parsed, RoomMemberEvent)
    return parsed


async def rows(db: Database) -> list[outbox.PendingMessage]:
    async with db.transaction() as session:
        return await outbox.pending(session)


async def uncleared(db: Database, user: str) -> list[audit.AuditRecordRow]:
    async with db.transaction() as session:
        entries = await audit.entries_for(session, user)
    return [e for e in entries if e.action == "membership.uncleared"]


async def with_dossier_room(db: Database, ref: str = "D-2026-0001") -> None:
    now = FixedClock().now()
    async with db.transaction() as session:
        await dossiers.insert(
            session,
            {
                "ref": ref,
                "kind": "person",
                "category": "other",
                "title": "Visit of Ms Q",
                "status": "open",
                "room_id": DOSSIER_ROOM,
                "created_by": LIAISON,
                "created_at": now,
                "updated_at": now,
            },
            (),
        )


# ------------------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("user", "room", "cleared"),
    [
        (LIAISON, configured_room("!c", "coordination"), True),
        (POLICE, configured_room("!c", "coordination"), False),
        (POLICE, configured_room("!o", "operations"), True),
        (WARNER, configured_room("!o", "operations"), False),
        (WARNER, configured_room("!e", "early_warning"), True),
        (POLICE, dossier_room("!d", "D-2026-0001"), False),
        (NOBODY, configured_room("!e", "early_warning"), False),
        (BRIDGE, dossier_room("!d", "D-2026-0001"), True),
        (FOREIGN, configured_room("!c", "coordination"), False),  # seeded, server not allowed
    ],
)
async def test_who_is_cleared_for_which_room(
    database: Database, user: str, room: GuardedRoom, cleared: bool
) -> None:
    pipeline = make_pipeline(database)
    async with database.transaction() as session:
        assert await pipeline.workflow(session).membership.cleared(user, room) is cleared


def test_rooms_say_what_the_bot_posts_there() -> None:
    assert configured_room("!a", "approvals").data is Data.DOSSIER
    assert configured_room("!o", "operations").data is Data.EXECUTION
    assert dossier_room("!d", "D-2026-0001") == GuardedRoom(
        "!d", "D-2026-0001", Data.DOSSIER, "D-2026-0001"
    )


# ------------------------------------------------------------------------ events, once each


async def test_an_uncleared_invite_to_a_configured_room_is_named_and_audited_once(
    database: Database,
) -> None:
    pipeline = make_pipeline(database)
    invite = event(member("$inv", NOBODY, "invite"))
    assert await pipeline.handle(ROOMS[RoomKey.OPERATIONS], invite)
    await pipeline.handle(ROOMS[RoomKey.OPERATIONS], invite)  # replayed after a crash
    # Accepting the invite continues the same stay: no second warning.
    join = member("$join", NOBODY, "join", sender=NOBODY, previous="invite", replaces="$inv")
    await pipeline.handle(ROOMS[RoomKey.OPERATIONS], event(join))
    queued = await rows(database)
    assert [(r.room_id, r.event_type) for r in queued] == [
        (ROOMS[RoomKey.OPERATIONS], MESSAGE),
        (ROOMS[RoomKey.COORDINATION], MESSAGE),
    ]
    body = queued[0].content["body"]
    assert body.startswith(f"⚠️ Not cleared for this room: {NOBODY}")
    assert f"Room: operations ({ROOMS[RoomKey.OPERATIONS]})" in body
    assert queued[1].content == queued[0].content
    [entry] = await uncleared(database, NOBODY)
    assert (entry.actor, entry.event_id) == (ADMIN, "$inv")
    assert entry.detail["removed"] is False and entry.detail["arrival"] == "invited"


async def test_in_coordination_itself_the_warning_is_posted_once(database: Database) -> None:
    pipeline = make_pipeline(database)
    await pipeline.handle(ROOMS[RoomKey.COORDINATION], event(member("$j", NOBODY, "join", NOBODY)))
    assert [r.room_id for r in await rows(database)] == [ROOMS[RoomKey.COORDINATION]]


async def test_an_uncleared_member_of_a_dossier_room_is_removed_first(database: Database) -> None:
    await with_dossier_room(database)
    pipeline = make_pipeline(database)
    await pipeline.handle(DOSSIER_ROOM, event(member("$j", POLICE, "join", POLICE)))
    queued = await rows(database)
    assert [(r.room_id, r.event_type) for r in queued] == [
        (DOSSIER_ROOM, KICK),
        (DOSSIER_ROOM, MESSAGE),
        (ROOMS[RoomKey.COORDINATION], MESSAGE),
    ]
    assert queued[0].content["user_id"] == POLICE
    assert "Room: D-2026-0001 (!dossier-room)" in queued[1].content["body"]
    assert "Visit of Ms Q" not in queued[1].content["body"]
    assert "Removed from the room" in queued[1].content["body"]
    [entry] = await uncleared(database, POLICE)
    assert entry.detail == {
        "room_id": DOSSIER_ROOM,
        "room": "D-2026-0001",
        "arrival": "joined",
        "removed": True,
    }


async def test_removal_can_be_turned_off(database: Database) -> None:
    await with_dossier_room(database)
    pipeline = make_pipeline(database, remove_uncleared=False)
    await pipeline.handle(DOSSIER_ROOM, event(member("$j", POLICE, "join", POLICE)))
    assert KICK not in [r.event_type for r in await rows(database)]
    assert (await uncleared(database, POLICE))[0].detail["removed"] is False


@pytest.mark.parametrize(
    "source",
    [
        member("$a", LIAISON, "join", LIAISON),  # cleared
        member("$b", BRIDGE, "join", BRIDGE),  # a service account
        member("$c", BOT, "join", BOT),  # the bot itself
        member("$d", NOBODY, "join", NOBODY, previous="join"),  # a new display name
        member("$e", NOBODY, "leave", NOBODY, previous="join"),
    ],
)
async def test_nothing_to_report(database: Database, source: dict[str, Any]) -> None:
    pipeline = make_pipeline(database)
    await pipeline.handle(ROOMS[RoomKey.COORDINATION], event(source))
    assert await rows(database) == []


async def test_rooms_the_bot_does_not_guard_are_left_alone(database: Database) -> None:
    pipeline = make_pipeline(database)
    await pipeline.handle("!elsewhere", event(member("$j", NOBODY, "join", NOBODY)))
    assert await rows(database) == []
    assert await uncleared(database, NOBODY) == []


def test_a_join_without_an_invite_is_its_own_stay() -> None:
    assert membership_episode("$j", member("$j", NOBODY, "join", previous="leave")) == "$j"
    accepted = member("$j", NOBODY, "join", previous="invite", replaces="$i")
    assert membership_episode("$j", accepted) == "$i"


# ------------------------------------------------------------------------ revocations


@dataclasses.dataclass
class FakeRoom:
    users: dict[str, object]


class FakeClient:
    """What the sweep asks of nio: the rooms it knows, and a room's state."""

    def __init__(self, members: list[dict[str, Any]]) -> None:
        self.members = members
        self.rooms = {DOSSIER_ROOM: FakeRoom({m["state_key"]: object() for m in members})}
        self.state_requests = 0

    async def room_get_state(self, room_id: str) -> RoomGetStateResponse:
        self.state_requests += 1
        return RoomGetStateResponse(self.members, room_id)


async def set_role(db: Database, user: str, role: Role, granted: bool, minute: int) -> None:
    at = FixedClock().now() + timedelta(minutes=minute)
    async with db.transaction() as session:
        await Store(session).set_role(user, role.value, granted, ADMIN, at)


async def test_a_member_whose_role_is_revoked_is_removed_once(database: Database) -> None:
    await with_dossier_room(database)
    pipeline = make_pipeline(database)
    await set_role(database, ANALYST, Role.ANALYST, True, 1)
    joined = member("$j", ANALYST, "join", ANALYST, previous="invite", replaces="$i")
    client = FakeClient([member("$bot", BOT, "join", BOT), joined])
    # Handled when cleared: nothing to report, and no claim that would hide a later one.
    await pipeline.handle(DOSSIER_ROOM, event(joined))
    sweep = MembershipSweep(client, pipeline)  # type: ignore[arg-type]
    await sweep.sweep()
    assert await rows(database) == [] and client.state_requests == 0

    await set_role(database, ANALYST, Role.ANALYST, False, 2)  # chat or the CLI: same table
    await sweep.sweep()
    await sweep.sweep()  # the same roles version: not looked at again
    queued = await rows(database)
    assert [(r.room_id, r.event_type) for r in queued] == [
        (DOSSIER_ROOM, KICK),
        (DOSSIER_ROOM, MESSAGE),
        (ROOMS[RoomKey.COORDINATION], MESSAGE),
    ]
    assert client.state_requests == 1
    [entry] = await uncleared(database, ANALYST)
    assert (entry.actor, entry.detail["arrival"]) == (BOT, "no longer cleared")

    # Another role change, or a restart (a new sweep): the same stay is not reported again.
    await set_role(database, NOBODY, Role.POLICE, True, 3)
    await MembershipSweep(client, pipeline).sweep()  # type: ignore[arg-type]
    assert len(await rows(database)) == 3


# ------------------------------------------------------------------ requesting the room


LIAISON_CHAT = {LIAISON: {Role.LIAISON}, ANALYST: {Role.ANALYST}, POLICE: {Role.POLICE}}


async def open_dossier(chat: Chat) -> str:
    reply = await chat.say(LIAISON, '!dossier open person "Visit of Ms Q"')
    return reply.title.removeprefix("Opened ")


async def test_the_room_is_named_by_the_id_and_requested_once(database: Database) -> None:
    chat = Chat(database, LIAISON_CHAT)
    ref = await open_dossier(chat)
    reply = await chat.say(LIAISON, f"!dossier room {ref} invite={ANALYST}")
    assert reply.room is not None
    assert (reply.room.name, reply.room.topic) == (ref, f"Aegis dossier {ref}")
    assert reply.room.invite == (LIAISON, ANALYST)
    # Asked again before the homeserver made the room: refused at once.
    again = await chat.say(LIAISON, f"!dossier room {ref}")
    assert again.severity is Severity.ERROR and again.room is None
    assert f"{ref} already has its room on the way" in text_of(again)
    timeline = text_of(await chat.say(LIAISON, f"!dossier timeline {ref}"))
    assert timeline.count("dedicated room requested") == 1


async def test_only_users_cleared_for_dossiers_are_invited(database: Database) -> None:
    chat = Chat(database, LIAISON_CHAT)
    ref = await open_dossier(chat)
    reply = await chat.say(LIAISON, f"!dossier room {ref} invite={ANALYST},{POLICE},{NOBODY}")
    assert reply.severity is Severity.ERROR and reply.room is None
    assert f"not cleared to read dossier content: {POLICE}, {NOBODY}" in text_of(reply)
    async with database.transaction() as session:
        entries = await audit.entries_for(session, ref)
        requested = await dossiers.get(session, ref)
    refusal = [e for e in entries if e.action == "refused:dossier room"]
    assert [e.detail["reason"] for e in refusal] == [
        f"not cleared to read dossier content: {POLICE}, {NOBODY}"
    ]
    assert requested is not None and requested.room_requested_at is None
    # Without them, the room may still be asked for.
    assert (await chat.say(LIAISON, f"!dossier room {ref} invite={ANALYST}")).room is not None


class RefusingHomeserver:
    """Refuses every room creation, as a homeserver would a bot that may not create rooms."""

    def __init__(self) -> None:
        self.rooms: dict[str, object] = {}
        self.user_id = BOT

    async def joined_rooms(self) -> JoinedRoomsResponse:
        return JoinedRoomsResponse([])

    async def room_create(self, **_: Any) -> RoomCreateError:
        return RoomCreateError("no", "M_FORBIDDEN")


async def test_a_room_that_can_never_be_made_may_be_asked_for_again(database: Database) -> None:
    chat = Chat(database, LIAISON_CHAT)
    ref = await open_dossier(chat)
    reply = await chat.say(LIAISON, f"!dossier room {ref}")
    assert reply.room is not None
    async with database.transaction() as session:
        await outbox.enqueue(
            session,
            txn_id="create",
            room_id="!coordination",
            event_type=CREATE_ROOM,
            content=room_request(reply.room),
            now=chat.now,
        )
        [message] = await outbox.pending(session)
    audience = make_audience(
        chat.access,
        {},
        BOT,
        ROOMS[RoomKey.COORDINATION],
        FixedClock(),
        RuntimeInfo("test", chat.now),
    )
    sender = Sender(RefusingHomeserver(), database, FixedClock(), asyncio.Event(), audience)  # type: ignore[arg-type]
    await sender._deliver(message, Backoff(first=0.001, cap=0.001))
    async with database.transaction() as session:
        assert await outbox.pending(session) == []
        dossier = await dossiers.get(session, ref)
    assert dossier is not None and dossier.room_id is None and dossier.room_requested_at is None
    assert (await chat.say(LIAISON, f"!dossier room {ref}")).room is not None
