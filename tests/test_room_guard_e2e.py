"""Need to know in rooms, against a real Synapse (SQLite and PostgreSQL): a dossier room only
the bot can open to anyone, named by its ID, and a membership guard that names uncleared
members and removes them from dossier rooms, also when their role is revoked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import nio
import pytest

from storage import audit
from storage.db import Database
from tests.support.bot_runner import InProcessBot
from tests.support.matrix_user import MatrixUser, content, in_reply_to, is_notice
from tests.support.world import World

REF_RE = re.compile(r"D-\d{4}-\d{4,}")


@pytest.fixture
async def running(world: World) -> AsyncIterator[InProcessBot]:
    async with world.running_bot() as bot:
        yield bot


async def ask(user: MatrixUser, room_id: str, text: str) -> dict[str, Any]:
    command = await user.say(room_id, text)
    return content(await user.reply_to(room_id, command, timeout=60))


async def uncleared_entries(world: World, user_id: str) -> list[audit.AuditRecordRow]:
    db = Database(world.setup.database_url)
    try:
        async with db.transaction() as session:
            entries = await audit.entries_for(session, user_id)
    finally:
        await db.close()
    return [e for e in entries if e.action == "membership.uncleared"]


def warns_of(user_id: str, bot: str) -> Any:
    def check(event: nio.Event) -> bool:
        return (
            is_notice(event)
            and event.sender == bot
            and f"Not cleared for this room: {user_id}" in content(event)["body"]
        )

    return check


async def state(user: MatrixUser, room_id: str, event_type: str) -> dict[str, Any]:
    response = await user.client.room_get_state_event(room_id, event_type, "")
    assert isinstance(response, nio.RoomGetStateEventResponse), response
    return dict(response.content)


async def invited_to(user: MatrixUser, name: str) -> str:
    found: list[str] = []

    def check() -> bool:
        found[:] = [r for r, room in user.client.invited_rooms.items() if room.name == name]
        return bool(found)

    await user._wait(check, 60, f"an invite to the room named {name}")
    return found[0]


async def test_dossier_room_only_the_bot_invites_and_a_revoked_member_is_removed(
    world: World, running: InProcessBot
) -> None:
    bot = world.setup.user_id
    bob = world.stranger  # cleared by a chat grant, so that a revocation can uncleared him
    granted = await ask(world.admin, world.coordination, f"!role grant {bob.user_id} analyst")
    assert "now holds analyst" in granted["body"], granted["body"]
    opened = await ask(world.alice, world.coordination, '!dossier open person "Visit of Ms Q"')
    found = REF_RE.search(opened["body"])
    assert found, opened["body"]
    ref = found.group(0)

    created = await ask(
        world.alice, world.coordination, f"!dossier room {ref} invite={bob.user_id}"
    )
    assert f"Creating the room of {ref}" in created["body"], created["body"]

    # The room's name is the ID: the invite (stripped state, never encrypted) shows it.
    room_id = await invited_to(bob, ref)
    assert await invited_to(world.alice, ref) == room_id
    await bob.join(room_id)
    await world.alice.join(room_id)

    # An invitee reads the welcome, sent after their invite.
    welcome = await bob.wait_for(
        room_id, lambda e: is_notice(e) and e.sender == bot and "Room of" in content(e)["body"], 60
    )
    assert welcome.decrypted
    assert f"Room of {ref}" in content(welcome)["body"]
    assert "Visit of Ms Q" not in content(welcome)["body"]  # IDs only outside the check

    assert await state(world.alice, room_id, "m.room.name") == {"name": ref}
    assert (await state(world.alice, room_id, "m.room.topic"))["topic"] == f"Aegis dossier {ref}"
    assert (await state(world.alice, room_id, "m.room.join_rules"))["join_rule"] == "invite"
    assert (await state(world.alice, room_id, "m.room.guest_access"))["guest_access"] == "forbidden"
    visibility = await state(world.alice, room_id, "m.room.history_visibility")
    assert visibility["history_visibility"] == "invited"
    levels = await state(world.alice, room_id, "m.room.power_levels")
    assert set(levels.get("users", {})) <= {bot}  # the creator's power, nobody else's
    assert {levels[k] for k in ("invite", "kick", "ban", "redact", "state_default")} == {100}
    assert levels["events"]["m.room.power_levels"] == 100
    create = await state(world.alice, room_id, "m.room.create")
    assert create.get("creator", bot) == bot

    # A liaison's invite, or a change of the room, is refused by the homeserver.
    with pytest.raises(RuntimeError, match="M_FORBIDDEN"):
        await world.alice.invite(room_id, world.admin.user_id)
    renamed = await world.alice.client.room_put_state(room_id, "m.room.name", {"name": "x"})
    assert isinstance(renamed, nio.RoomPutStateError), renamed

    # Revoked in chat: out of the dossier room, and named there and in coordination.
    revoked = await ask(world.admin, world.coordination, f"!role revoke {bob.user_id} analyst")
    assert "no longer holds analyst" in revoked["body"], revoked["body"]
    await world.alice.wait_for(
        room_id,
        lambda e: (
            isinstance(e, nio.RoomMemberEvent)
            and e.state_key == bob.user_id
            and e.membership == "leave"
            and e.sender == bot
        ),
        60,
    )
    warning = await world.admin.wait_for(world.coordination, warns_of(bob.user_id, bot), 60)
    body = content(warning)["body"]
    assert f"Room: {ref} ({room_id})" in body and "Removed from the room" in body
    assert "Visit of Ms Q" not in body
    await world.alice.wait_for(room_id, warns_of(bob.user_id, bot), 60)
    [entry] = await uncleared_entries(world, bob.user_id)
    assert entry.detail == {
        "room_id": room_id,
        "room": ref,
        "arrival": "no longer cleared",
        "removed": True,
    }


async def test_a_role_less_user_seated_in_coordination_is_named_there_and_audited(
    world: World, running: InProcessBot
) -> None:
    bot = world.setup.user_id
    await world.seat(world.stranger, "coordination")
    warning = await world.alice.wait_for(
        world.coordination, warns_of(world.stranger.user_id, bot), 60
    )
    body = content(warning)["body"]
    assert f"Room: coordination ({world.coordination})" in body
    assert "Membership: invited" in body and "grant them a role" in body
    # The join came before this command: once it is answered, both were handled.
    command = await world.alice.say(world.coordination, "!help")
    await world.alice.reply_to(world.coordination, command, timeout=60)
    warnings = [
        e
        for e in world.alice.replies(world.coordination, bot)
        if warns_of(world.stranger.user_id, bot)(e)
    ]
    assert len(warnings) == 1  # invited, then joined: one stay, one warning
    assert in_reply_to(warnings[0]) is None
    [entry] = await uncleared_entries(world, world.stranger.user_id)
    assert entry.actor == world.admin.user_id
    assert entry.detail == {
        "room_id": world.coordination,
        "room": "coordination",
        "arrival": "invited",
        "removed": False,
    }
    # Nobody is removed from a configured room: he is still there.
    room = world.alice.client.rooms[world.coordination]
    assert world.stranger.user_id in room.users
