"""Issue 13's erasure against the real homeserver, on SQLite and PostgreSQL: a dossier is
worked on through the real pipeline and sender (opened with a person's name, an address in
a note, shown, exported, given its own room where a member types a command and talks),
closed long enough ago, and purged with `aegis purge`. Then the name and the address are
nowhere: not in any text column of any table, not in the raw bytes of the SQLite file and
its log, not in a `pg_dump`; and every message of the bot's that carried them, and what
the member typed in the dossier's room, is redacted on the homeserver."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nio
from sqlalchemy import String, Text, inspect, text
from sqlalchemy.engine import make_url

from storage.db import Database
from tests.support.bot_runner import FakeClock, InProcessBot, run_aegis
from tests.support.matrix_user import MatrixUser, content, in_reply_to
from tests.support.world import World

NAME = "Jan Vermeulenhove"
ADDRESS = "Kastanjelaan 77"
# What must be found nowhere, compared case-insensitively (search folds words to lower case).
NEEDLES = ("vermeulenhove", "kastanjelaan")
YEARS = 5  # retention.closed_dossier_years: the default


async def ask(user: MatrixUser, room: str, command: str) -> tuple[str, str]:
    """(the command's event ID, the plain body of the bot's reply)."""
    event_id = await user.say(room, command)
    reply = await user.reply_to(room, event_id, timeout=60)
    return event_id, str(content(reply)["body"])


def carries_secret(event: nio.Event) -> bool:
    return any(needle in str(content(event)).lower() for needle in NEEDLES)


async def text_hits(db: Database) -> list[str]:
    """Every text column of every table, searched for the needles."""
    hits = []
    async with db.snapshot() as session:
        connection = await session.connection()

        def columns(sync: object) -> dict[str, list[str]]:
            inspector = inspect(sync)
            return {
                table: [
                    c["name"]
                    for c in inspector.get_columns(table)
                    if isinstance(c["type"], (String, Text))
                ]
                for table in inspector.get_table_names()
            }

        for table, names in (await connection.run_sync(columns)).items():
            for name in names:
                rows = await session.execute(text(f'SELECT "{name}" FROM "{table}"'))
                for (value,) in rows:
                    if value is not None and any(n in str(value).lower() for n in NEEDLES):
                        hits.append(f"{table}.{name}: {value!r}"[:300])
    return hits


def raw_hits(database_url: str) -> list[str]:
    """The SQLite file and its log as bytes, or what `pg_dump` writes of the database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        blobs = {
            path.name: path.read_bytes()
            for path in (Path(url.database), Path(url.database + "-wal"))
            if path.exists()
        }
    else:
        dump = subprocess.run(
            [
                "pg_dump",
                *("-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)),
                *("-U", url.username or "postgres", "-d", str(url.database)),
            ],
            capture_output=True,
            check=True,
        )
        blobs = {"pg_dump": dump.stdout}
    return [
        f"{name}: {needle}"
        for name, blob in blobs.items()
        for needle in NEEDLES
        if needle.encode() in blob.lower()
    ]


async def as_stored(user: MatrixUser, room_id: str, event_id: str) -> dict[str, object]:
    """The event's content as the homeserver serves it now (after a redaction: empty)."""
    response = await user.client.room_get_event(room_id, event_id)
    assert isinstance(response, nio.RoomGetEventResponse), response
    return dict(response.event.source.get("content", {}))


async def test_purge_erases_the_dossier_from_the_database_and_the_homeserver(
    world: World,
) -> None:
    alice, coordination, bot_id = world.alice, world.coordination, world.setup.user_id
    world.setup.roles[alice.user_id] = ["liaison", "analyst"]
    clock = FakeClock()
    clock.advance(days=-366 * (YEARS + 1))  # all of this happened six years ago
    bot = InProcessBot(world.setup.write_config(), clock)
    await bot.start()
    try:
        await bot.ready()
        await world.admin.wait_for_member(coordination, bot_id)

        _, opened = await ask(
            alice, coordination, f'!dossier open person "Protection of {NAME}" subjects="{NAME}"'
        )
        found = re.search(r"D-\d{4}-\d{4}", opened)
        assert found, opened
        ref = found.group()
        await ask(alice, coordination, f"!dossier note {ref} lives at {ADDRESS}, Gent")
        _, shown = await ask(alice, coordination, f"!dossier show {ref}")
        assert NAME in shown and ADDRESS in shown
        exported, _ = await ask(alice, coordination, f"!export {ref}")
        await alice.wait_for(
            coordination,
            lambda e: content(e).get("msgtype") == "m.file" and in_reply_to(e) == exported,
            timeout=60,
        )
        await ask(alice, coordination, f"!dossier room {ref} invite={alice.user_id}")
        await alice._wait(
            lambda: any(r.name == ref for r in alice.client.invited_rooms.values()),
            60,
            "the invite to the dossier room",
        )
        room = next(i for i, r in alice.client.invited_rooms.items() if r.name == ref)
        await alice.join(room)
        await alice.wait_for(room, lambda e: e.sender == bot_id, timeout=60)  # the welcome
        typed = [
            (await ask(alice, room, f"!dossier note the family also uses {ADDRESS}"))[0],
            await alice.say(room, f"{NAME} prefers the back door"),
        ]
        await ask(alice, coordination, f"!dossier close {ref} protection ended")

        # The bot's messages that carried the name or the address, as the member saw them.
        carried = {
            (room_id, event.event_id)
            for room_id in (coordination, room)
            for event in alice.events(room_id)
            if event.sender == bot_id and carries_secret(event)
        }
        file_event = next(
            e
            for e in alice.events(coordination)
            if in_reply_to(e) == exported and content(e).get("msgtype") == "m.file"
        )
        carried.add((coordination, file_event.event_id))
        assert len(carried) >= 3, carried  # opened, shown, the exported file

        code, out, err = await run_aegis("purge", "-c", str(world.setup.config_path))
        assert code == 0, err
        assert f"purged {ref}" in out, out

        # The bot's own signal: it leaves the dossier's room last, after every redaction
        # and the notice.
        await alice.wait_for(
            room,
            lambda e: (
                isinstance(e, nio.RoomMemberEvent)
                and e.state_key == bot_id
                and e.membership == "leave"
            ),
            timeout=120,
        )
        notice = await alice.wait_for(
            room, lambda e: e.sender == bot_id and f"{ref} was purged" in str(content(e))
        )
        assert notice.event_id
    finally:
        await bot.stop()

    for room_id, event_id in sorted(carried):
        assert await as_stored(alice, room_id, event_id) == {}, (room_id, event_id)
    for event_id in typed:
        assert await as_stored(alice, room, event_id) == {}, event_id

    db = Database(world.setup.database_url)
    try:
        assert await text_hits(db) == []
        async with db.snapshot() as session:
            purged = await session.scalar(
                text("SELECT purged_at FROM dossiers WHERE ref = :ref"), {"ref": ref}
            )
        assert purged is not None
    finally:
        await db.close()
    assert raw_hits(world.setup.database_url) == []
