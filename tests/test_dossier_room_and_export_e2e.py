"""Dossier rooms and exports against a real Synapse: files arrive (encrypted) and decrypt,
a dossier's room is created exactly once and commands typed in it find their dossier.

Each test gets a fresh bot account, fresh rooms and a fresh database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nio
import pytest
from nio.crypto.attachments import decrypt_attachment
from sqlalchemy import delete

from bot import effects
from bot.render import CREATE_ROOM, INVITE, MESSAGE, membership_request, room_request
from commands.replies import Reply, RoomRequest
from storage import dossiers, outbox
from storage.db import Database
from storage.tables import OutboxMessage
from tests.support.bot_runner import InProcessBot
from tests.support.homeserver import Homeserver
from tests.support.matrix_user import MatrixUser, content, in_reply_to, is_notice
from tests.support.world import World
from workflow.clock import SystemClock

REF_RE = re.compile(r"D-\d{4}-\d{4,}")


@pytest.fixture
async def running(world: World) -> AsyncIterator[InProcessBot]:
    world.setup.roles[world.alice.user_id] = ["liaison", "analyst"]
    async with world.running_bot() as bot:
        yield bot


async def ask(user: MatrixUser, room_id: str, text: str) -> tuple[str, dict[str, Any]]:
    """Sends a command; answers its event ID and the content of the bot's reply."""
    command = await user.say(room_id, text)
    return command, content(await user.reply_to(room_id, command))


async def open_dossier(world: World, title: str) -> str:
    _, reply = await ask(world.alice, world.coordination, f'!dossier open person "{title}"')
    found = REF_RE.search(reply["body"])
    assert found, reply["body"]
    return found.group(0)


async def file_reply(user: MatrixUser, room_id: str, command: str) -> dict[str, Any]:
    event = await user.wait_for(
        room_id,
        lambda e: content(e).get("msgtype") == "m.file" and in_reply_to(e) == command,
        timeout=60,
    )
    return content(event)


async def download(user: MatrixUser, file_content: dict[str, Any]) -> bytes:
    """What Element does: fetch the media, and decrypt it if the message says it is."""
    encrypted = file_content.get("file")
    mxc = encrypted["url"] if encrypted else file_content["url"]
    response = await user.client.download(mxc=mxc)
    assert isinstance(response, nio.MemoryDownloadResponse), response
    if not encrypted:
        return bytes(response.body)
    return bytes(
        decrypt_attachment(
            response.body,
            encrypted["key"]["k"],
            encrypted["hashes"]["sha256"],
            encrypted["iv"],
        )
    )


async def test_export_markdown_and_json_arrive_as_encrypted_files_replying_to_the_command(
    world: World, running: InProcessBot
) -> None:
    room = world.coordination
    ref = await open_dossier(world, "Visit of Minister Zed")
    await ask(world.alice, room, f"!threat log {ref} level=3 source=OCAD online threats seen")

    command, reply = await ask(world.alice, room, f"!export {ref}")
    assert f"{ref}.md" in reply["body"]
    md_file = await file_reply(world.alice, room, command)
    assert md_file["body"] == f"{ref}.md"
    assert md_file["info"]["mimetype"] == "text/markdown"
    assert "url" not in md_file  # an encrypted room gets only the encrypted file's address
    markdown = (await download(world.alice, md_file)).decode()
    assert md_file["info"]["size"] == len(markdown.encode())
    assert "Visit of Minister Zed" in markdown
    assert "online threats seen" in markdown
    assert "## Audit trail" in markdown
    # The reply comes before the file: the outbox keeps a command's rows in order.
    ids = [e.event_id for e in world.alice.events(room)]
    notice_id = next(
        e.event_id for e in world.alice.events(room) if is_notice(e) and in_reply_to(e) == command
    )
    file_id = next(
        e.event_id
        for e in world.alice.events(room)
        if content(e).get("msgtype") == "m.file" and in_reply_to(e) == command
    )
    assert ids.index(notice_id) < ids.index(file_id)

    command, _ = await ask(world.alice, room, f"!export {ref} format=json")
    json_file = await file_reply(world.alice, room, command)
    assert json_file["body"] == f"{ref}.json"
    exported = json.loads(await download(world.alice, json_file))
    assert exported["dossier"]["id"] == ref
    assert [a["summary"] for a in exported["assessments"]] == ["online threats seen"]
    assert exported["audit"]
    assert all(entry["actor"] == world.alice.user_id for entry in exported["audit"])


async def stored_dossier_room(database_url: str, ref: str) -> str | None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            dossier = await dossiers.get(session, ref)
            assert dossier is not None
            return dossier.room_id
    finally:
        await db.close()


async def test_dossier_room_is_encrypted_welcomes_and_knows_its_dossier(
    world: World, running: InProcessBot
) -> None:
    ref = await open_dossier(world, "Embassy reception")
    _, reply = await ask(
        world.admin, world.coordination, f"!dossier room {ref} invite={world.alice.user_id}"
    )
    assert f"Creating the room of {ref}" in reply["body"]
    # Asked again before the room exists (or after): refused, and recorded once.
    _, again = await ask(world.admin, world.coordination, f"!dossier room {ref}")
    assert again["body"].startswith(f"❌ {ref} already has its room"), again["body"]

    def invited() -> str | None:
        return next(
            (
                room_id
                for room_id, room in world.alice.client.invited_rooms.items()
                if room.name == ref
            ),
            None,
        )

    # The bot's own signal: it invites only once the room is recorded as the dossier's.
    await world.alice._wait(lambda: invited() is not None, 60, "the invite to the dossier room")
    room_id = invited()
    assert room_id is not None
    assert await stored_dossier_room(world.setup.database_url, ref) == room_id
    await world.alice.join(room_id)
    assert world.alice.client.rooms[room_id].encrypted

    welcome = await world.alice.wait_for(
        room_id, lambda e: is_notice(e) and e.sender == world.setup.user_id, timeout=60
    )
    assert welcome.decrypted
    assert f"Room of {ref}" in content(welcome)["body"]

    # Typed in the dossier's room without an ID: lands on that dossier.
    _, logged = await ask(
        world.alice, room_id, "!threat log level=3 source=OCAD hostile crowd expected"
    )
    assert ref in logged["body"], logged["body"]
    _, history = await ask(world.alice, world.coordination, f"!threat list {ref}")
    assert "hostile crowd expected" in history["body"]
    _, shown = await ask(world.alice, room_id, "!dossier show")
    assert shown["body"].startswith(f"{ref} — Embassy reception")
    notices = [content(e)["body"] for e in world.alice.replies(room_id, world.setup.user_id)]
    assert len([body for body in notices if f"Room of {ref}" in body]) == 1
    _, timeline = await ask(world.alice, world.coordination, f"!dossier timeline {ref}")
    assert timeline["body"].count("room: dedicated room requested") == 1, timeline["body"]


async def test_html_of_replies_escapes_a_hostile_title(world: World, running: InProcessBot) -> None:
    ref = await open_dossier(world, "<script>alert(1)</script> gala")
    _, shown = await ask(world.alice, world.coordination, f"!dossier show {ref}")
    assert "<script>alert(1)</script> gala" in shown["body"]  # plain text keeps it verbatim
    assert "<script>" not in shown["formatted_body"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; gala" in shown["formatted_body"]


async def bot_client(homeserver: Homeserver, user_id: str, password: str) -> nio.AsyncClient:
    """A freshly started bot's view: logged in, no sync yet, so nio knows no rooms."""
    client = nio.AsyncClient(homeserver.url, user_id)
    login = await client.login(password)
    assert isinstance(login, nio.LoginResponse), login
    return client


async def dossier_rooms(client: nio.AsyncClient, ref: str) -> list[str]:
    """The bot's joined rooms labelled with `ref`, asked of the homeserver."""
    joined = await client.joined_rooms()
    assert isinstance(joined, nio.JoinedRoomsResponse), joined
    labelled = []
    for room_id in joined.rooms:
        state = await client.room_get_state_event(room_id, effects.DOSSIER_STATE, "")
        if isinstance(state, nio.RoomGetStateEventResponse) and state.content == {"dossier": ref}:
            labelled.append(room_id)
    return labelled


async def queue_room_request(db: Database, ref: str, title: str, invite: str) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as session:
        await dossiers.insert(
            session,
            {
                "ref": ref,
                "kind": "event",
                "category": "other",
                "title": title,
                "status": "open",
                "created_by": invite,
                "created_at": now,
                "updated_at": now,
            },
            (),
        )
        request = RoomRequest(
            dossier_ref=ref,
            name=title,
            topic=f"Aegis dossier {ref}",
            invite=(invite,),
            welcome=Reply(f"Room of {ref}"),
        )
        await outbox.enqueue(
            session,
            txn_id=f"create-{ref}",
            room_id="!coordination:aegis.test",
            event_type=CREATE_ROOM,
            content=room_request(request),
            now=now,
        )


async def pending_creation(db: Database, ref: str) -> outbox.PendingMessage:
    async with db.transaction() as session:
        rows = await outbox.pending(session)
    return next(r for r in rows if r.event_type == CREATE_ROOM and r.txn_id == f"create-{ref}")


async def test_room_creation_interrupted_before_it_was_recorded_adopts_the_room(
    homeserver: Homeserver, database: Database
) -> None:
    """The crash window: the homeserver made the room, our database never heard of it."""
    password = secrets.token_urlsafe(12)
    bot_id = await homeserver.register("aegis-" + secrets.token_hex(4), password)
    liaison = await homeserver.register("liaison-" + secrets.token_hex(4), "pw-liaison")
    clock = SystemClock()
    await queue_room_request(database, "D-2026-0001", "Summit", liaison)
    message = await pending_creation(database, "D-2026-0001")

    before_crash = await bot_client(homeserver, bot_id, password)
    try:
        first = await effects.create_room(before_crash, database, clock, message)
    finally:
        await before_crash.close()
    assert isinstance(first, effects.Done) and first.ref.startswith("!")
    # Undo what a kill before the commit would have lost: the room ID and the welcome.
    async with database.transaction() as session:
        await dossiers.update_fields(session, "D-2026-0001", {"room_id": None})
        room_rows = [r for r in await outbox.pending(session) if r.room_id == first.ref]
        # Nobody was invited at creation: the invite is a row of its own, before the welcome.
        assert [(r.txn_id, r.event_type, r.content) for r in room_rows] == [
            (effects.invite_txn_id(message.txn_id, 0), INVITE, membership_request(liaison)),
            (effects.welcome_txn_id(message.txn_id), MESSAGE, room_rows[1].content),
        ]
        await session.execute(
            delete(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in room_rows]))
        )

    restarted = await bot_client(homeserver, bot_id, password)
    try:
        again = await effects.create_room(restarted, database, clock, message)
        assert again == first
        assert await dossier_rooms(restarted, "D-2026-0001") == [first.ref]
        assert await stored_dossier_room(database.url, "D-2026-0001") == first.ref
        async with database.transaction() as session:
            room_rows = [r for r in await outbox.pending(session) if r.room_id == first.ref]
        assert [r.event_type for r in room_rows] == [INVITE, MESSAGE]
        welcome = room_rows[1]
        assert welcome.content["body"] == f"Room of D-2026-0001\n{liaison}"
        assert welcome.content["m.mentions"] == {"user_ids": [liaison]}

        # Once recorded, a further attempt (or a second request) creates and queues nothing.
        assert await effects.create_room(restarted, database, clock, message) == first
        async with database.transaction() as session:
            assert len([r for r in await outbox.pending(session) if r.room_id == first.ref]) == 2

        # Adoption is by the dossier the room names, not by its name (both are "Summit").
        await queue_room_request(database, "D-2026-0002", "Summit", liaison)
        other = await effects.create_room(
            restarted, database, clock, await pending_creation(database, "D-2026-0002")
        )
        assert isinstance(other, effects.Done) and other.ref not in ("", first.ref)
        encryption = await restarted.room_get_state_event(first.ref, "m.room.encryption", "")
        assert isinstance(encryption, nio.RoomGetStateEventResponse)
        assert encryption.content["algorithm"] == "m.megolm.v1.aes-sha2"
    finally:
        await restarted.close()


async def test_a_labelled_room_the_bot_did_not_create_is_never_adopted(
    homeserver: Homeserver, database: Database
) -> None:
    """Anyone can label a room of their own as a dossier's and get the bot into it; only
    the rooms the bot created itself are adopted."""
    password = secrets.token_urlsafe(12)
    bot_id = await homeserver.register("aegis-" + secrets.token_hex(4), password)
    forger_id = await homeserver.register("forger-" + secrets.token_hex(4), "pw-forger")
    await queue_room_request(database, "D-2026-0003", "Summit", forger_id)
    message = await pending_creation(database, "D-2026-0003")
    forger = await bot_client(homeserver, forger_id, "pw-forger")
    bot = await bot_client(homeserver, bot_id, password)
    try:
        forged = await forger.room_create(
            name="Summit",
            initial_state=effects.dossier_room_state("D-2026-0003"),
            invite=[bot_id],
        )
        assert isinstance(forged, nio.RoomCreateResponse), forged
        assert isinstance(await bot.join(forged.room_id), nio.JoinResponse)

        made = await effects.create_room(bot, database, SystemClock(), message)
        assert isinstance(made, effects.Done) and made.ref not in ("", forged.room_id)
        assert await stored_dossier_room(database.url, "D-2026-0003") == made.ref
    finally:
        await forger.close()
        await bot.close()
