"""Dossiers, threat assessments and roles through the real dispatcher and database
(SQLite and PostgreSQL), without a homeserver."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from sqlalchemy import text

from commands import Reply, Severity
from commands.replies import Notify
from config import Occasion, Role
from storage import dossiers
from storage.db import Database
from tests.support.chat import BRUSSELS, Chat, text_of

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
ADMIN = "@adm:aegis.test"
READER = "@police:aegis.test"
NOBODY = "@nobody:aegis.test"


@pytest.fixture
def chat(database: Database) -> Chat:
    return Chat(
        database,
        {
            LIAISON: {Role.LIAISON},
            ANALYST: {Role.ANALYST},
            ADMIN: {Role.ADMIN},
            READER: {Role.POLICE},
        },
    )


def refs_in(reply: Reply) -> list[str]:
    return [line.split(" ")[0] for line in reply.lines]


async def count(db: Database, table: str) -> int:
    async with db.transaction() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def open_dossier(chat: Chat, extra: str = "") -> str:
    reply = await chat.say(
        LIAISON, f'!dossier open person "Visit of the President" {extra}'.strip()
    )
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    return reply.title.removeprefix("Opened ")


async def test_open_gives_yearly_sequence_ids(chat: Chat) -> None:
    assert await open_dossier(chat) == "D-2026-0001"
    assert await open_dossier(chat) == "D-2026-0002"
    chat.advance(days=40)  # into 2027
    assert await open_dossier(chat) == "D-2027-0001"


async def test_open_with_dutch_period_and_options(chat: Chat) -> None:
    ref = await open_dossier(
        chat,
        'category=head-of-state start="volgende maandag 9u" end="4 december 18u" '
        'basis=status ref=BZ/2026/117 lead=@anna:aegis.test subjects="A. Person, B. Person"',
    )
    shown = text_of(await chat.say(READER, f"!dossier show {ref}"))
    assert "person/head-of-state" in shown
    assert "Mon 30 Nov 2026 09:00 → Fri 04 Dec 2026 18:00" in shown
    assert "BZ/2026/117" in shown and "@anna:aegis.test" in shown and "Persons: 2" in shown
    assert f"\n{ref}/1 A. Person\n" in shown and f"\n{ref}/2 B. Person\n" in shown
    assert "no assessment" in shown


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        ('!dossier open animal "X"', "person, institution, event"),
        ('!dossier open person "X" category=embassy', "head-of-state"),
        ('!dossier open event "X" start=tomorrow end=yesterday', "end: must be after start"),
        ('!dossier open person "X" basis=maybe', "status, threat, both"),
        ('!dossier open person ""', "title"),
        ('!dossier open person "X" start="when pigs fly"', "when pigs fly"),
    ],
)
async def test_bad_open_names_the_field_and_writes_nothing(
    chat: Chat, database: Database, command: str, complaint: str
) -> None:
    reply = await chat.say(LIAISON, command)
    assert reply.severity is Severity.ERROR
    assert complaint in text_of(reply)
    assert await count(database, "dossiers") == 0
    assert await count(database, "dossier_counters") == 0


async def test_threat_log_names_levels_in_three_languages_and_announces_changes(chat: Chat) -> None:
    ref = await open_dossier(chat)
    first = await chat.say(ANALYST, f"!threat log {ref} level=2 source=OCAD initial analysis")
    assert "2 MEDIUM / GEMIDDELD / MOYEN" in first.title
    assert first.also == ()  # nothing to compare with, and below level 3
    chat.advance(hours=5)
    second = await chat.say(ANALYST, f"!threat log {ref} level=4 source=police credible plot")
    assert "4 VERY SERIOUS / ZEER ERNSTIG / TRÈS GRAVE" in second.title
    [announcement] = second.also
    assert announcement.room == "coordination"
    assert announcement.reply.title.startswith("THREAT LEVEL RAISED")
    assert announcement.reply.severity is Severity.WARNING
    # At the highest level the liaisons are mentioned; not the analyst who logged it.
    assert announcement.notify == Notify(Occasion.THREAT_LEVEL_4, besides=(ANALYST,))
    third = await chat.say(ANALYST, f"!threat log {ref} level=2 source=OCAD de-escalation")
    assert third.also[0].reply.title == (
        f"Threat level of {ref} changed: 4 VERY SERIOUS / ZEER ERNSTIG / TRÈS GRAVE → "
        "2 MEDIUM / GEMIDDELD / MOYEN"
    )
    assert third.also[0].notify is None
    same = await chat.say(ANALYST, f"!threat log {ref} level=2 source=OCAD confirmed")
    assert same.also == ()
    history = text_of(await chat.say(READER, f"!threat list {ref}"))
    assert history.index("confirmed") < history.index("credible plot") < history.index("initial")


async def test_review_defaults_to_thirty_days(chat: Chat) -> None:
    ref = await open_dossier(chat)
    reply = await chat.say(ANALYST, f"!threat log {ref} level=1 source=VSSE routine")
    assert ("Review", "Fri 25 Dec 2026 10:00") in reply.fields


@pytest.mark.parametrize("level", ["0", "5", "high"])
async def test_level_outside_range_lists_valid_levels(
    chat: Chat, database: Database, level: str
) -> None:
    ref = await open_dossier(chat)
    reply = await chat.say(ANALYST, f"!threat log {ref} level={level} source=OCAD x")
    assert reply.severity is Severity.ERROR
    assert "level:" in text_of(reply) and "1 LOW / LAAG / FAIBLE" in text_of(reply)
    assert await count(database, "threat_assessments") == 0


async def test_unknown_dossier_is_named(chat: Chat) -> None:
    reply = await chat.say(READER, "!dossier show D-2026-0999")
    assert reply.title == "no dossier D-2026-0999"


async def test_closed_dossier_is_read_only_until_reopened(chat: Chat, database: Database) -> None:
    ref = await open_dossier(chat)
    assert (
        await chat.say(LIAISON, f"!dossier close {ref} visit over")
    ).severity is Severity.SUCCESS
    before = await count(database, "dossier_timeline")
    for attempt in (
        f"!dossier edit {ref} title=Changed",
        f"!dossier note {ref} late note",
        f"!threat log {ref} level=3 source=OCAD x",
    ):
        speaker = ANALYST if "threat" in attempt else LIAISON
        reply = await chat.say(speaker, attempt)
        assert reply.severity is Severity.ERROR and "closed" in reply.title, attempt
    assert await count(database, "dossier_timeline") == before
    assert "closed" in text_of(await chat.say(READER, "!dossier list status=closed"))
    assert (
        await chat.say(LIAISON, f"!dossier reopen {ref} new threats")
    ).severity is Severity.SUCCESS
    assert (
        await chat.say(LIAISON, f"!dossier edit {ref} title=Changed")
    ).severity is Severity.SUCCESS


async def test_list_filters_and_pages(chat: Chat) -> None:
    refs = [await open_dossier(chat) for _ in range(25)]
    event = (await chat.say(LIAISON, '!dossier open event "Summit" category=summit')).title[7:]
    chat.advance(minutes=1)
    await chat.say(ANALYST, f"!threat log {refs[3]} level=3 source=OCAD x")
    first = await chat.say(READER, "!dossier list")
    assert first.title == "Dossiers 1/2 (26 in all)" and len(first.lines) == 20
    assert first.lines[0].startswith(refs[3])  # newest activity first
    assert len((await chat.say(READER, "!dossier list page=2")).lines) == 6
    assert [
        line.split(" ")[0] for line in (await chat.say(READER, "!dossier list kind=event")).lines
    ] == [event]
    serious = await chat.say(READER, "!dossier list level>=3")
    assert [line.split(" ")[0] for line in serious.lines] == [refs[3]]
    bad = await chat.say(READER, "!dossier list level>=7")
    assert bad.severity is Severity.ERROR and bad.title.startswith("level>=: must be 1, 2, 3")
    typo = await chat.say(READER, "!dossier list level>=high")
    assert typo.title == "level>=: 'high' is not a whole number"


async def test_find_searches_titles_references_and_notes(chat: Chat) -> None:
    embassy = (
        await chat.say(LIAISON, '!dossier open institution "Embassy of Ruritania" category=embassy')
    ).title[7:]
    other = await open_dossier(chat, "ref=NCCN-77")
    await chat.say(LIAISON, f"!dossier note {other} spotted a grey van near the residence")
    assert refs_in(await chat.say(READER, "!dossier find ruritania")) == [embassy]
    assert refs_in(await chat.say(READER, "!dossier find nccn-77")) == [other]
    assert refs_in(await chat.say(READER, "!dossier find GREY VAN")) == [other]
    assert "Nothing found" in (await chat.say(READER, "!dossier find 100%")).title


async def test_timeline_has_every_step_with_who(chat: Chat) -> None:
    ref = await open_dossier(chat)
    await chat.say(ANALYST, f"!threat log {ref} level=2 source=OCAD first")
    await chat.say(LIAISON, f"!dossier note {ref} a note")
    await chat.say(LIAISON, f"!dossier edit {ref} ref=X-1")
    await chat.say(LIAISON, f"!dossier close {ref} done")
    await chat.say(LIAISON, f"!dossier reopen {ref} again")
    timeline = (await chat.say(READER, f"!dossier timeline {ref}")).lines
    kinds = [line.split(" · ")[2].split(":")[0] for line in timeline]
    assert kinds == ["opened", "assessment", "note", "edited", "closed", "reopened"]
    assert ANALYST in timeline[1] and LIAISON in timeline[2]


async def test_an_edit_on_the_timeline_names_fields_as_people_do_in_local_time(chat: Chat) -> None:
    ref = await open_dossier(chat)
    edited = await chat.say(LIAISON, f'!dossier edit {ref} start=2026-12-08 end="8 december" ref=X')
    assert dict(edited.fields)["Period"] == ("Tue 08 Dec 2026 00:00 → Tue 08 Dec 2026 end of day")
    timeline = (await chat.say(READER, f"!dossier timeline {ref}")).lines
    assert timeline[-1].endswith(
        "edited: start = Tue 08 Dec 2026 00:00; end = Tue 08 Dec 2026 end of day; reference = X"
    )
    assert "starts_at" not in timeline[-1] and "2026-12-0" not in timeline[-1]


async def test_roles_gate_actions_and_grants_apply_at_once(chat: Chat, database: Database) -> None:
    ref = await open_dossier(chat)
    refused = await chat.say(LIAISON, f"!threat log {ref} level=3 source=OCAD x")
    assert refused.severity is Severity.ERROR and "analyst" in refused.title
    assert "admin" in (await chat.say(LIAISON, f"!role grant {LIAISON} analyst")).title
    granted = await chat.say(ADMIN, f"!role grant {LIAISON} analyst")
    assert granted.severity is Severity.SUCCESS
    assert (
        await chat.say(LIAISON, f"!threat log {ref} level=3 source=OCAD x")
    ).severity is Severity.WARNING
    listing = text_of(await chat.say(ADMIN, "!role list"))
    assert f"{LIAISON}: analyst, liaison (config)" in listing
    # A role seeded in the config file cannot be revoked from chat; a granted one can.
    seeded = await chat.say(ADMIN, f"!role revoke {LIAISON} liaison")
    assert seeded.severity is Severity.ERROR and "config file" in seeded.title
    assert (await chat.say(LIAISON, f"!dossier note {ref} x")).severity is Severity.SUCCESS
    await chat.say(ADMIN, f"!role revoke {LIAISON} analyst")
    assert "analyst" in (await chat.say(LIAISON, f"!threat log {ref} level=3 source=OCAD x")).title
    listing = text_of(await chat.say(ADMIN, "!role list"))
    assert f"{LIAISON}: liaison (config)" in listing
    assert "no role" in (await chat.say(NOBODY, f"!dossier show {ref}")).title
    async with database.transaction() as s:
        rows = (
            await s.execute(text("SELECT actor, action, target FROM audit_log ORDER BY seq"))
        ).all()
    actions = [(actor, action) for actor, action, _ in rows]
    assert (LIAISON, "refused:threat log") in actions
    assert (ADMIN, "role.grant") in actions and (ADMIN, "role.revoke") in actions
    assert (LIAISON, "threat.log") in actions


async def test_concurrent_opens_get_distinct_gapless_ids(database: Database) -> None:
    one = Chat(database, {LIAISON: {Role.LIAISON}, ADMIN: {Role.LIAISON}})
    replies = await asyncio.gather(
        *(one.say(LIAISON if i % 2 else ADMIN, f'!dossier open event "E{i}"') for i in range(50))
    )
    refs = sorted(r.title.removeprefix("Opened ") for r in replies)
    assert refs == [f"D-2026-{n:04d}" for n in range(1, 51)]


async def test_export_files_carry_the_record_and_audit(chat: Chat) -> None:
    ref = await open_dossier(chat, "ref=BZ/1")
    await chat.say(ANALYST, f"!threat log {ref} level=3 source=OCAD | pipes | and <b>tags</b>")
    md = await chat.say(READER, f"!export {ref}")
    [attachment] = md.attachments
    body = attachment.data.decode()
    assert attachment.filename == f"{ref}.md" and attachment.mimetype == "text/markdown"
    assert "# D-2026-0001 — Visit of the President" in body
    assert "\\| pipes \\|" in body and "## Audit trail" in body and "threat.log" in body
    as_json = await chat.say(READER, f"!export {ref} format=json")
    record = json.loads(as_json.attachments[0].data)
    assert record["dossier"]["id"] == ref and record["assessments"][0]["level"] == 3
    assert {a["action"] for a in record["audit"]} >= {"dossier.opened", "threat.log"}
    # Machine ISO, but local: the clock time people saw in chat, with Brussels' offset.
    opened = record["dossier"]["opened_at"]
    assert opened == datetime.fromisoformat(opened).astimezone(BRUSSELS).isoformat()
    assert opened.endswith(("+01:00", "+02:00"))


async def test_reply_to_a_refused_command_without_role_is_audited(
    chat: Chat, database: Database
) -> None:
    await chat.say(NOBODY, "!dossier list")
    async with database.transaction() as s:
        rows = (await s.execute(text("SELECT actor, action FROM audit_log"))).all()
    assert [(a, b) for a, b in rows] == [(NOBODY, "refused:dossier list")]


async def test_in_a_dossier_room_the_id_may_be_left_out(chat: Chat, database: Database) -> None:
    ref = await open_dossier(chat)
    other = await open_dossier(chat)
    async with database.transaction() as s:
        await dossiers.update_fields(s, ref, {"room_id": "!dossier-room"})
    logged = await chat.say(
        ANALYST, "!threat log level=3 source=OCAD seen near home", "!dossier-room"
    )
    assert logged.title == f"{ref}: threat level 3 SERIOUS / ERNSTIG / GRAVE"
    assert (await chat.say(READER, "!dossier show", "!dossier-room")).title.startswith(ref)
    assert "no threat assessment" in (await chat.say(READER, f"!threat list {other}")).title
    elsewhere = await chat.say(ANALYST, "!threat log level=3 source=OCAD x", "!coordination")
    assert elsewhere.severity is Severity.ERROR and "name the dossier" in elsewhere.title
