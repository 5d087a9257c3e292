"""Issue 13's erasure in the outbox, on SQLite and PostgreSQL: a sent message's content is
dropped after its grace window, keeping what de-duplication and reaction lookup need; a
purge withdraws the unsent messages that name the dossier (by ID, or by one of its measures
or proposals) and queues the homeserver's part of the purge for the bot."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from bot import erasure
from bot.pipeline import file_text
from bot.render import LEAVE, MESSAGE, REDACT, REDACT_ROOM, UPLOAD
from bot.rows import Row
from config import Role
from storage import dossiers, outbox
from storage.db import Database
from storage.tables import OutboxMessage
from tests.support.chat import START, Chat

LIAISON = "@lia:aegis.test"
BOT = "@aegis:aegis.test"
COORDINATION = "!coordination:aegis.test"
DOSSIER_ROOM = "!dossier-room:aegis.test"


async def queue(db: Database, txn: str, body: str, ref: str | None = None, **extra: Any) -> None:
    async with db.transaction() as session:
        await outbox.enqueue(
            session,
            txn_id=txn,
            room_id=extra.pop("room", COORDINATION),
            event_type=extra.pop("kind", MESSAGE),
            content={"msgtype": "m.notice", "body": body},
            now=START,
            ref=ref,
            **extra,
        )


async def rows(db: Database) -> dict[str, OutboxMessage]:
    async with db.snapshot() as session:
        return {r.txn_id: r for r in await session.scalars(select(OutboxMessage))}


async def sent(db: Database, txn: str, event_id: str, minutes: float) -> None:
    row_id = (await rows(db))[txn].id
    async with db.transaction() as session:
        assert await outbox.mark_sent(session, row_id, event_id, START + timedelta(minutes=minutes))


async def test_sent_content_is_dropped_after_the_grace_window_keeping_what_lookups_need(
    database: Database,
) -> None:
    await queue(database, "old", "D-2026-0001 — Protection of Jan Peeters", ref="prompt:1")
    await queue(database, "recent", "Jan Peeters lives at Rue Haute 5")
    await queue(database, "unsent", "Jan Peeters, still to send")
    await sent(database, "old", "$old", minutes=0)
    await sent(database, "recent", "$recent", minutes=30)

    async with database.transaction() as session:
        dropped = await outbox.drop_content(session, START + timedelta(minutes=10))
    assert dropped == 1
    stored = await rows(database)
    assert stored["old"].content == "{}" and stored["old"].audience is None
    assert "Rue Haute" in stored["recent"].content
    assert "still to send" in stored["unsent"].content
    async with database.snapshot() as session:
        # Reactions on the prompt still find it; a resend would still be de-duplicated.
        assert await outbox.named(session, "$old") == ("prompt:1", COORDINATION)
        assert await outbox.event_of_ref(session, "prompt:1") == (COORDINATION, "$old")
        assert [m.txn_id for m in await outbox.pending(session)] == ["unsent"]

    async with database.transaction() as session:
        assert await outbox.drop_content(session, START + timedelta(minutes=40)) == 1
        assert await outbox.drop_content(session, START + timedelta(minutes=40)) == 0
    dump = json.dumps([r.content for r in (await rows(database)).values()])
    assert "Rue Haute" not in dump and dump.count("Jan Peeters") == 1  # the unsent one


async def test_grace_window_is_configured_in_minutes_with_a_default_of_an_hour() -> None:
    from config.settings import RetentionSettings

    assert RetentionSettings().outbox_grace_minutes == 60


async def test_purge_withdraws_unsent_messages_naming_the_dossier_and_queues_redactions(
    database: Database,
) -> None:
    chat = Chat(database, {LIAISON: {Role.LIAISON}})
    opened = await chat.say(LIAISON, '!dossier open person "Protection of Jan Peeters"')
    ref = opened.title.removeprefix("Opened ")
    other = (await chat.say(LIAISON, '!dossier open person "Visit of Anna Other"')).title
    other = other.removeprefix("Opened ")
    proposed = await chat.say(LIAISON, f"!measure propose {ref} patrol at Rue Haute 5")
    measure = next(w for w in proposed.title.split() if w.startswith("M-"))
    async with database.transaction() as session:
        await dossiers.update_fields(session, ref, {"room_id": DOSSIER_ROOM})

    await queue(database, "shown", f"{ref} — Protection of Jan Peeters")
    await queue(database, "in-room", f"{ref}: welcome", room=DOSSIER_ROOM)
    # Names no dossier ID, only the measure: still the dossier's personal data.
    await queue(database, "order", f"EXECUTION ORDER {measure.rstrip(':')}: Rue Haute 5")
    await queue(database, "in-flight", f"Jan Peeters ({ref})")
    await queue(database, "others", f"{other} — Visit of Anna Other")
    export = Row(COORDINATION, UPLOAD, {"filename": "x.md", "data": "IyBELTIwMjYtMDAwMQ=="})
    assert file_text(export) == ("# D-2026-0001",)
    await sent(database, "shown", "$shown", minutes=1)
    await sent(database, "in-room", "$welcome", minutes=1)

    async with database.transaction() as session:
        queued = await erasure.erase(session, ref, BOT, START + timedelta(days=1))
    assert queued == 4

    stored = await rows(database)
    for txn in ("order", "in-flight"):
        assert stored[txn].content == "{}" and stored[txn].error == outbox.PURGED, txn
        assert stored[txn].sent_at is not None  # never sent now
    assert "Anna Other" in stored["others"].content
    assert stored["others"].sent_at is None
    async with database.snapshot() as session:
        pending = [(m.room_id, m.event_type, m.content) for m in await outbox.pending(session)]
    assert pending[0][:2] == (COORDINATION, MESSAGE) and "Anna Other" in pending[0][2]["body"]
    assert [(room, kind) for room, kind, _ in pending[1:]] == [
        (COORDINATION, REDACT),
        (DOSSIER_ROOM, REDACT_ROOM),
        (DOSSIER_ROOM, MESSAGE),
        (DOSSIER_ROOM, LEAVE),
    ]
    assert pending[1][2]["event_id"] == "$shown"  # the room's own is redacted by the walk
    assert f"{ref} was purged" in pending[3][2]["body"]

    # A row the sender had already taken when the purge ran: posted, then redacted.
    async with database.transaction() as session:
        posted = await outbox.mark_sent(session, stored["in-flight"].id, "$late", START)
    assert posted is False
    assert (await rows(database))["in-flight"].content == "{}"

    async with database.snapshot() as session:
        filed = (await session.execute(text("SELECT dossier_ref FROM outbox_dossiers"))).all()
    assert {r for (r,) in filed} >= {ref, other}
