"""Bounds and leaks: SQL errors carry no values, a log record stays one line, page numbers
are capped, and "could not decrypt" is said to a sender once per window."""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime, timedelta

import pytest
from nio import MegolmEvent
from sqlalchemy.exc import IntegrityError

from bot.logs import TextFormatter
from bot.pipeline import Pipeline
from commands import Severity
from commands.replies import RoomKey
from config import Role
from storage import outbox
from storage.db import Database
from storage.tables import PartnerRow
from tests.support.chat import START, Chat, text_of
from tests.support.pipeline import pipeline_for
from tests.support.rooms import rooms_with
from workflow import AccessPolicy

NAME = "Jan Peeters of 12 Rue Haute"
ALICE = "@alice:aegis.test"
BOB = "@bob:aegis.test"
BOT = "@aegis:aegis.test"
ROOM = "!coordination"


# ---------------------------------------------------------------------------- SQL errors


async def test_a_failed_statement_names_no_value(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Two partners under one ID: the error, and its traceback as logged, hold the
    statement but not the name that was to be written."""

    def partner(name: str) -> PartnerRow:
        return PartnerRow(
            id=7,
            name=name,
            sector="energy",
            token_hash=name[:3] + "-hash",
            webhook_secret="s",
            created_at=START,
        )

    with pytest.raises(IntegrityError) as raised:
        async with database.transaction() as session:
            session.add(partner("someone else"))
            await session.flush()
            session.add(partner(NAME))
            await session.flush()
    with caplog.at_level(logging.ERROR):
        logging.getLogger("aegis.test").error("failed", exc_info=raised.value)
    assert "INSERT INTO ew_partners" in str(raised.value)
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert "Jan Peeters" not in text and "Rue Haute" not in text
    assert "Jan Peeters" not in "".join(traceback.format_exception(raised.value))


# ---------------------------------------------------------------------------- log lines


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("bot.pipeline", logging.WARNING, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


FORGED = "ok\n2026-12-01 10:00:00,000 INFO bot.pipeline: admin granted\r\u2028x"


def test_a_text_log_record_cannot_forge_another_line() -> None:
    formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    line = formatter.format(record("ignoring %s", FORGED, sender=FORGED, room_id="!r"))
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.count("INFO bot.pipeline: admin granted") == 2  # escaped, on this line
    assert "ignoring ok\\n2026-12-01 10:00:00,000 INFO" in line
    assert line.endswith(
        " room_id=!r sender=ok\\n2026-12-01 10:00:00,000 INFO bot.pipeline: "
        "admin granted\\r\\u2028x"
    )


def test_a_traceback_stays_indented_under_its_record() -> None:
    formatter = TextFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError(FORGED)
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    first, *rest = formatter.format(entry).split("\n")
    assert first == "WARNING bot.pipeline: failed"
    assert rest and all(line.startswith("    ") for line in rest)
    assert "    Traceback (most recent call last):" in rest


# ---------------------------------------------------------------------------- page numbers


PAGED = ("!dossier list page={}", "!audit D-2026-0001 page={}", "!ew list page={}")


async def test_a_page_beyond_the_cap_is_a_usage_error(database: Database) -> None:
    """Every command that takes page=: a number past the cap, however large, is refused
    before it reaches the database; the cap itself is an ordinary (empty) page."""
    chat = Chat(database, {ALICE: {Role.ADMIN, Role.LIAISON}})
    await chat.say(ALICE, '!dossier open person "Someone"')
    for command in PAGED:
        for page in ("999999999999999999", "10001", "0"):
            reply = await chat.say(ALICE, command.format(page))
            assert reply.title == f"page: '{page}' is not a page from 1 to 10000", command
            assert reply.severity is Severity.ERROR and "[page=<page>]" in text_of(reply)
        last = await chat.say(ALICE, command.format(10000))
        assert last.severity is not Severity.ERROR, text_of(last)


# ---------------------------------------------------------------------------- decryption


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


def encrypted(event_id: str, sender: str) -> MegolmEvent:
    return MegolmEvent.from_dict(
        {
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": 1,
            "type": "m.room.encrypted",
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "xx",
                "sender_key": "key",
                "device_id": "DEV",
                "session_id": "sess",
            },
        }
    )


# The limit is kept in memory, not in the database: one backend will do.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_could_not_decrypt_is_said_once_per_sender_and_window(database: Database) -> None:
    requested: list[str] = []

    async def request_keys(event: MegolmEvent) -> None:
        requested.append(event.event_id)

    rooms = {key: f"!{key.value}" for key in RoomKey}
    access = AccessPolicy({ALICE: frozenset({Role.LIAISON})}, frozenset(), "aegis.test")
    pipeline: Pipeline = pipeline_for(
        database,
        __name__,
        access,
        rooms,
        rooms_with(rooms.values(), ALICE, BOB, BOT),
        BOT,
        request_keys,
    )
    clock = Clock()
    pipeline.clock = clock

    async def answers() -> list[str]:
        async with database.transaction() as session:
            return [
                m.content["m.relates_to"]["m.in_reply_to"]["event_id"]
                for m in await outbox.pending(session)
            ]

    for n in range(20):
        await pipeline.handle(ROOM, encrypted(f"$a{n}", ALICE))
        clock.at += timedelta(seconds=10)
    await pipeline.handle(ROOM, encrypted("$b0", BOB))
    await pipeline.handle(ROOM, encrypted("$b1", BOB))
    assert await answers() == ["$a0", "$b0"]
    assert len(requested) == 22  # every event still asks the devices for its key
    clock.at += timedelta(minutes=10)
    await pipeline.handle(ROOM, encrypted("$a-later", ALICE))
    await pipeline.handle(ROOM, encrypted("$a-later", ALICE))  # a replay is not a new event
    assert await answers() == ["$a0", "$b0", "$a-later"]
