"""Persons in a dossier, and `!dossier show` stating the real measures, through the real
dispatcher, workflow and database (SQLite and PostgreSQL), without a homeserver."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text

from bot.render import to_html
from commands import Reply, Severity
from commands.agenda_views import document
from config import Role
from storage.db import MIGRATIONS, Database
from tests.support.chat import BRUSSELS, Chat, text_of
from workflow.persons import Coverage

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
MINA = "@mina:aegis.test"
POLICE = "@paul:aegis.test"


@pytest.fixture
def chat(database: Database) -> Chat:
    return Chat(
        database,
        {
            LIAISON: {Role.LIAISON},
            ANALYST: {Role.ANALYST},
            MINA: {Role.APPROVER},
            POLICE: {Role.POLICE},
        },
    )


async def ok(chat: Chat, user: str, command_text: str) -> Reply:
    reply = await chat.say(user, command_text)
    assert reply.severity in (Severity.SUCCESS, Severity.WARNING), text_of(reply)
    return reply


async def family(chat: Chat) -> str:
    reply = await ok(
        chat,
        LIAISON,
        '!dossier open person "Family Z" category=threatened-person subjects="Anna Z, Bert Z"',
    )
    return reply.title.removeprefix("Opened ")


async def propose(chat: Chat, extra: str) -> str:
    """Proposes, and puts the prompt on record; returns the proposal ID."""
    reply = await ok(chat, LIAISON, f"!measure propose {extra}")
    proposal = reply.title.split()[1].rstrip(":")
    await chat.posted(f"prompt:{proposal}", f"$prompt-{proposal}")
    return proposal


async def approve(chat: Chat, proposal: str) -> None:
    result = await chat.react(MINA, f"$prompt-{proposal}")
    assert result.decision is not None


def group(reply: Reply, heading: str) -> tuple[str, ...]:
    [found] = [g.lines for g in reply.groups if g.heading == heading]
    return found


async def audit_actions(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as s:
        rows = await s.execute(text("SELECT action, target FROM audit_log ORDER BY seq"))
        return [(action, target) for action, target in rows.all()]


# ------------------------------------------------------------------- !dossier show, measures


async def test_show_states_each_measure_in_force_scheduled_or_pending(chat: Chat) -> None:
    ref = await family(chat)
    shown = await chat.say(POLICE, f"!dossier show {ref}")
    assert group(shown, f"{ref} as a whole") == (
        "level: no assessment of its own",
        "measures: none in force, scheduled or pending",
    )
    assert "none active or pending" not in text_of(shown)

    scheduled = await propose(chat, f'{ref} close-protection start="2026-12-08 12:00" visit')
    await approve(chat, scheduled)
    in_force = await propose(chat, f"{ref} patrol threats at the home")
    await approve(chat, in_force)
    await propose(chat, f"{ref} checks suspicious car")
    ended = await propose(chat, f"{ref} techno-prevention survey")
    await ok(chat, LIAISON, f"!proposal withdraw {ended}")

    whole = group(await chat.say(POLICE, f"!dossier show {ref}"), f"{ref} as a whole")
    assert whole == (
        "level: no assessment of its own",
        "M-1 · close-protection · Tue 08 Dec 2026 12:00 → — · "
        "approved, starts Tue 08 Dec 2026 12:00",
        "M-2 · patrol · — → — · active",
        "M-3 · checks · — → — · proposed, awaiting decision",
    )

    chat.now = datetime(2026, 12, 8, 11, 30, tzinfo=UTC)  # 12:30 in Brussels
    whole = group(await chat.say(POLICE, f"!dossier show {ref}"), f"{ref} as a whole")
    assert whole[1] == "M-1 · close-protection · Tue 08 Dec 2026 12:00 → — · active"


# ---------------------------------------------------------------------------- the persons


async def test_subjects_become_persons_numbered_in_the_dossier_never_reused(
    chat: Chat, database: Database
) -> None:
    ref = await family(chat)
    added = await ok(chat, LIAISON, f'!dossier person add {ref} "Carla Z"')
    assert added.title == f"Added {ref}/3 to {ref}" and added.fields == (("Name", "Carla Z"),)
    assert (await ok(chat, LIAISON, f"!dossier person remove {ref}/3")).title == (
        f"Removed {ref}/3 from {ref}"
    )
    again = await ok(chat, LIAISON, f'!dossier person add {ref} "Dirk Z"')
    assert again.title == f"Added {ref}/4 to {ref}"
    renamed = await ok(chat, LIAISON, f'!dossier person rename {ref}/2 "Bert Zeeman"')
    assert renamed.title == f"Renamed {ref}/2"

    shown = await chat.say(POLICE, f"!dossier show {ref}")
    headings = [g.heading for g in shown.groups]
    assert headings == [
        f"{ref} as a whole",
        f"{ref}/1 Anna Z",
        f"{ref}/2 Bert Zeeman",
        f"{ref}/4 Dirk Z",
        "Recent activity",
    ]
    assert dict(shown.fields)["Persons"] == "3"
    timeline = text_of(await chat.say(POLICE, f"!dossier timeline {ref}"))
    assert f"person: person {ref}/3 added: Carla Z" in timeline
    assert f"person: person {ref}/3 removed" in timeline
    assert f"person: person {ref}/2 renamed: Bert Zeeman" in timeline
    actions = [a for a in await audit_actions(database) if a[0].startswith("dossier.person")]
    assert actions == [
        ("dossier.person_add", ref),
        ("dossier.person_remove", ref),
        ("dossier.person_add", ref),
        ("dossier.person_rename", ref),
    ]


@pytest.mark.parametrize(
    ("command_text", "complaint"),
    [
        ('!dossier person add {ref} ""', "name: must not be empty"),
        ('!dossier person rename {ref}/9 "X"', "no person {ref}/9; its persons: {ref}/1, {ref}/2"),
        ('!dossier person rename {ref}/1 "Anna Z"', "{ref}/1 is named so already"),
        ("!dossier person remove {ref}", "is not a person (D-<year>-<number>/<n>)"),
        ("!dossier person remove D-2026-0099/1", "no dossier D-2026-0099"),
        ("!threat log {ref} person=7 level=2 source=OCAD x", "no person {ref}/7"),
        ("!threat log {ref} person=D-2026-0099/1 level=2 source=OCAD x", "not a person of {ref}"),
        ("!measure propose {ref} patrol for=Anna x", "or <n> within the dossier"),
    ],
)
async def test_person_commands_refuse_what_is_wrong(
    chat: Chat, command_text: str, complaint: str
) -> None:
    ref = await family(chat)
    reply = await chat.say(
        LIAISON if "threat" not in command_text else ANALYST, command_text.format(ref=ref)
    )
    assert reply.severity is Severity.ERROR
    assert complaint.format(ref=ref) in text_of(reply)


async def test_person_commands_need_the_liaison_role(chat: Chat) -> None:
    ref = await family(chat)
    reply = await chat.say(POLICE, f'!dossier person add {ref} "Eve"')
    assert reply.severity is Severity.ERROR and "liaison" in text_of(reply)


async def test_removing_a_person_with_live_measures_is_refused_naming_them(chat: Chat) -> None:
    ref = await family(chat)
    approved = await propose(chat, f"{ref} close-protection for=1 threats")
    await approve(chat, approved)
    await propose(chat, f"{ref} patrol for={ref}/1 at her office")
    await propose(chat, f"{ref} checks at the home")  # the whole dossier's: no obstacle

    refused = await chat.say(LIAISON, f"!dossier person remove {ref}/1")
    assert refused.severity is Severity.ERROR
    assert f"{ref}/1 has measures in force or pending: M-1 (active), M-2 (proposed)" in (
        text_of(refused)
    )
    assert (await chat.say(LIAISON, f"!dossier person remove {ref}/2")).severity is (
        Severity.SUCCESS
    )
    # Removed: no longer to be named by assessments or measures.
    reply = await chat.say(ANALYST, f"!threat log {ref} person=2 level=2 source=OCAD x")
    assert f"no person {ref}/2 (removed); its persons: {ref}/1" in text_of(reply)


# ------------------------------------------------------------- levels and measures per person


async def test_levels_and_measures_per_person_grouped_whole_dossier_first(chat: Chat) -> None:
    ref = await family(chat)
    await ok(chat, ANALYST, f"!threat log {ref} level=2 source=OCAD family in general")
    logged = await ok(chat, ANALYST, f"!threat log {ref} person=1 level=4 source=OCAD video")
    assert logged.title == f"{ref}/1: threat level 4 VERY SERIOUS / ZEER ERNSTIG / TRÈS GRAVE"
    assert dict(logged.fields)["Person"] == f"{ref}/1 Anna Z"
    [announced] = logged.also
    assert announced.reply.title.endswith(f"— {ref}/1 (first assessment)")
    # A first assessment of Bert is a first one of his scope, even after the family's.
    bert = await ok(chat, ANALYST, f"!threat log {ref} person={ref}/2 level=1 source=police x")
    assert bert.title.startswith(f"{ref}/2: threat level 1 LOW")
    patrol = await propose(chat, f"{ref} patrol at the home")
    await approve(chat, patrol)
    await propose(chat, f"{ref} close-protection for=1 school run")

    shown = await chat.say(POLICE, f"!dossier show {ref}")
    # The dossier's level is the highest current one, of anyone in it.
    assert dict(shown.fields)["Threat level"].startswith("4 VERY SERIOUS")
    assert [g.heading for g in shown.groups] == [
        f"{ref} as a whole",
        f"{ref}/1 Anna Z",
        f"{ref}/2 Bert Z",
        "Recent activity",
    ]
    whole, anna, bert_lines = (g.lines for g in shown.groups[:3])
    assert whole[0].startswith("level 2 MEDIUM") and whole[1:] == ("M-1 · patrol · — → — · active",)
    assert anna[0].startswith("level 4 VERY SERIOUS") and "(OCAD)" in anna[0]
    assert anna[1:] == ("M-2 · close-protection · — → — · proposed, awaiting decision",)
    assert bert_lines == (
        bert_lines[0],
        "measures: none in force, scheduled or pending",
    ) and bert_lines[0].startswith("level 1 LOW")
    measure = await chat.say(POLICE, "!measure show M-2")
    assert measure.title == f"M-2 — close-protection for {ref}/1 Anna Z"
    listed = await chat.say(LIAISON, "!dossier list level>=4")
    assert ref in text_of(listed)


# ---------------------------------------------------------------------- exports and agenda


async def test_exports_carry_persons_each_with_levels_and_measures(chat: Chat) -> None:
    ref = await family(chat)
    await ok(chat, ANALYST, f"!threat log {ref} level=2 source=OCAD family")
    await ok(chat, ANALYST, f"!threat log {ref} person=2 level=3 source=OCAD threats")
    await propose(chat, f"{ref} close-protection for=2 school run")
    await propose(chat, f"{ref} patrol at the home")

    reply = await chat.say(LIAISON, f"!export {ref} format=json")
    record = json.loads(reply.attachments[0].data)
    assert [a["level"] for a in record["assessments"]] == [2]
    assert [m["id"] for m in record["measures"]] == ["M-2"]
    assert [(p["id"], p["name"]) for p in record["persons"]] == [
        (f"{ref}/1", "Anna Z"),
        (f"{ref}/2", "Bert Z"),
    ]
    anna, bert = record["persons"]
    assert anna["assessments"] == [] and anna["measures"] == []
    assert [a["level"] for a in bert["assessments"]] == [3]
    assert [(m["id"], m["type"], m["state"]) for m in bert["measures"]] == [
        ("M-1", "close-protection", "proposed")
    ]

    markdown = (await chat.say(LIAISON, f"!export {ref}")).attachments[0].data.decode()
    whole_at = markdown.index("## The dossier as a whole")
    anna_at = markdown.index(f"## {ref}/1 Anna Z")
    bert_at = markdown.index(f"## {ref}/2 Bert Z")
    assert whole_at < anna_at < bert_at < markdown.index("## Notes")
    assert "| M-2 | patrol | proposed |" in markdown[whole_at:anna_at]
    assert "| M-1 | close-protection | proposed |" in markdown[bert_at:]


async def test_monthly_agenda_lists_each_protected_person_with_their_measures(
    chat: Chat,
) -> None:
    ref = await family(chat)
    for extra in (f"{ref} close-protection for=1 school run", f"{ref} patrol at the home"):
        await approve(chat, await propose(chat, extra))
    await propose(chat, f"{ref} checks for=2 pending only")
    async with chat.workflow() as wf:
        agenda = await wf.agenda.monthly(chat.now)
    [persons] = [s for s in document(agenda, BRUSSELS).sections if "Protected" in s.heading]
    assert persons.heading == "Protected persons (2)"
    assert persons.items == (
        f"{ref}/1 Anna Z (Family Z): M-1 close-protection, to —; M-2 patrol, to — (whole dossier)",
        f"{ref}/2 Bert Z (Family Z): M-2 patrol, to — (whole dossier)",
    )
    body = text_of(await chat.say(POLICE, "!agenda monthly"))
    assert f"M-1 close-protection [active] | for {ref}/1 Anna Z | {ref} Family Z" in body


# ------------------------------------------------------------------------------- counting


async def test_coverage_counts_dossiers_opened_in_a_year_and_their_persons(chat: Chat) -> None:
    ref = await family(chat)  # 2 persons
    await ok(chat, LIAISON, '!dossier open event "Summit"')  # none
    mistake = await ok(chat, LIAISON, f'!dossier person add {ref} "Entered by mistake"')
    await ok(chat, LIAISON, f"!dossier person remove {mistake.title.split()[1]}")
    # A person protected by a measure of their own, removed later, was covered.
    moved = (await ok(chat, LIAISON, f'!dossier person add {ref} "Moved out"')).title.split()[1]
    measure = await propose(chat, f"{ref} patrol for={moved} at the flat")
    await ok(chat, LIAISON, f"!proposal withdraw {measure}")
    await ok(chat, LIAISON, f"!dossier person remove {moved}")
    chat.now = datetime(2027, 1, 5, 9, tzinfo=UTC)
    await ok(chat, LIAISON, '!dossier open person "Next year" subjects="Y"')

    async with chat.workflow() as wf:
        assert await wf.persons.coverage(2026) == Coverage(2026, 2, 3)
        assert await wf.persons.coverage(2027) == Coverage(2027, 1, 1)
        assert await wf.persons.coverage(2025) == Coverage(2025, 0, 0)


# ------------------------------------------------------------------------------ migration


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def test_migration_turns_each_subject_into_a_numbered_person(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0011_audience")
            opened = datetime(2026, 3, 1, 9, tzinfo=UTC)
            dossiers = sa.table(
                "dossiers",
                *(sa.column(c) for c in ("id", "ref", "kind", "category", "title", "status")),
                *(sa.column(c) for c in ("created_by", "created_at", "updated_at")),
            )
            subjects = sa.table("dossier_subjects", sa.column("dossier_id"), sa.column("name"))
            common = {"kind": "person", "category": "other", "status": "open"}
            await conn.execute(
                dossiers.insert(),
                [
                    {
                        "id": n,
                        "ref": f"D-2026-000{n}",
                        "title": f"T{n}",
                        **common,
                        "created_by": "@x:y",
                        "created_at": opened,
                        "updated_at": opened,
                    }
                    for n in (1, 2)
                ],
            )
            await conn.execute(
                subjects.insert(),
                [
                    {"dossier_id": 2, "name": "B1"},
                    {"dossier_id": 1, "name": "A1"},
                    {"dossier_id": 2, "name": "B2"},
                ],
            )
        await db.migrate()
        async with db.transaction() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT dossier_id, number, name, removed_at FROM dossier_persons "
                        "ORDER BY dossier_id, number"
                    )
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            (1, 1, "A1", None),
            (2, 1, "B1", None),
            (2, 2, "B2", None),
        ]
    finally:
        await db.close()


async def test_person_names_are_escaped_in_the_html_of_show(chat: Chat) -> None:
    ref = await family(chat)
    await ok(chat, LIAISON, f'!dossier person add {ref} "<b>Eve</b> & co"')
    html = to_html(await chat.say(POLICE, f"!dossier show {ref}"))
    assert f"<h4>{ref}/3 &lt;b&gt;Eve&lt;/b&gt; &amp; co</h4>" in html
    assert "<b>Eve</b>" not in html


async def test_removing_a_person_takes_their_level_out_of_the_dossiers(chat: Chat) -> None:
    ref = await family(chat)
    await ok(chat, ANALYST, f"!threat log {ref} level=2 source=OCAD family")
    await ok(chat, ANALYST, f"!threat log {ref} person=1 level=4 source=OCAD video")
    await ok(chat, ANALYST, f"!threat log {ref} level=1 source=OCAD calmer")
    level = dict((await chat.say(POLICE, f"!dossier show {ref}")).fields)["Threat level"]
    assert level.startswith("4 VERY SERIOUS")
    await ok(chat, LIAISON, f"!dossier person remove {ref}/1")
    level = dict((await chat.say(POLICE, f"!dossier show {ref}")).fields)["Threat level"]
    assert level.startswith("1 LOW")
