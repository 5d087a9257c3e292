"""Data protection: `aegis purge` leaves tombstones and a chain that still verifies; every read
of a dossier is in the audit trail, and `!audit` shows it to admins. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from commands import Reply, Severity
from config import Role
from storage import audit
from storage.db import MIGRATIONS, Database
from storage.tables import AuditEntry
from tests.support.bot_runner import run_aegis
from tests.support.chat import START, Chat, text_of
from tests.support.databases import TEST_AUDIT_KEY, insider
from workflow.persons import Coverage
from workflow.privacy import PersonalData, retention_cutoff

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
ADMIN = "@adm:aegis.test"
READER = "@police:aegis.test"
MINA = "@mina:aegis.test"
OPERATOR = "cli:operator"
YEARS = 5
# Personal data of the old dossier: none of it may survive the purge, anywhere.
SECRETS = (
    "Jan Peeters",
    "Mia Vos",
    "Peeters-Vos",
    "Ruritania",
    "BZ/2020/117",
    "grey van",
    "Rue Haute",
    "motorbike",
)


def make_chat(db: Database, now: datetime = START) -> Chat:
    return Chat(
        db,
        {
            LIAISON: {Role.LIAISON},
            ANALYST: {Role.ANALYST},
            ADMIN: {Role.ADMIN},
            READER: {Role.POLICE},
            MINA: {Role.APPROVER},
        },
        now=now,
    )


@pytest.fixture
def chat(database: Database) -> Chat:
    return make_chat(database)


async def say_ok(chat: Chat, user: str, command_text: str) -> str:
    reply = await chat.say(user, command_text)
    assert reply.severity in (Severity.SUCCESS, Severity.WARNING, Severity.INFO), text_of(reply)
    return reply.title


async def open_dossier(chat: Chat, title: str, extra: str = "") -> str:
    return (await say_ok(chat, LIAISON, f'!dossier open person "{title}" {extra}')).removeprefix(
        "Opened "
    )


async def old_dossier_full_of_personal_data(chat: Chat) -> str:
    """Persons (one added and renamed later), a reference, notes, an assessment, a withdrawn
    and a rejected measure with a rationale: every place personal data can sit. Closed at the
    chat's current time."""
    ref = await open_dossier(
        chat, "Protection of Jan Peeters", 'subjects="Jan Peeters, M. Peeters" ref=BZ/2020/117'
    )
    await say_ok(chat, LIAISON, f'!dossier person add {ref} "Mia Peeters-Vos"')
    await say_ok(chat, LIAISON, f'!dossier person rename {ref}/3 "Mia Vos"')
    await say_ok(chat, LIAISON, f"!dossier note {ref} a grey van seen at Rue Haute")
    await say_ok(chat, ANALYST, f"!threat log {ref} level=3 source=OCAD threats from Ruritania")
    first = await say_ok(chat, LIAISON, f"!measure propose {ref} patrol around Rue Haute")
    await say_ok(chat, LIAISON, f"!proposal withdraw {first.split()[1].rstrip(':')}")
    second = await say_ok(chat, LIAISON, f"!measure propose {ref} close-protection motorbike")
    proposal = second.split()[1].rstrip(":")
    await chat.posted(f"prompt:{proposal}", f"$prompt-{proposal}")
    await chat.react(MINA, f"$prompt-{proposal}", "❌")
    assert await chat.rationale(MINA, f"$prompt-{proposal}", "Jan Peeters is safe")
    await say_ok(chat, LIAISON, f'!dossier edit {ref} title="Jan Peeters\' protection"')
    await say_ok(chat, LIAISON, f"!dossier close {ref} Jan Peeters left Ruritania")
    return ref


async def purge(chat: Chat, years: int = YEARS) -> dict[str, PersonalData]:
    """What `aegis purge` does, at the chat's time."""
    async with chat.workflow() as wf:
        plan = await wf.privacy.plan(years)
    done = {}
    for dossier in plan.due:
        async with chat.workflow() as wf:
            removed = await wf.privacy.purge(OPERATOR, dossier.ref, years)
        assert removed is not None
        done[dossier.ref] = removed
    return done


async def every_row(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """The whole database, table by table, in a stable order."""
    tables = [
        "dossiers",
        "dossier_persons",
        "dossier_notes",
        "dossier_terms",
        "threat_assessments",
        "dossier_timeline",
        "measures",
        "proposals",
        "votes",
        "audit_log",
        "audit_reads",
        "outbox",
        "role_grants",
    ]
    async with db.transaction() as s:
        return {
            t: [tuple(r) for r in (await s.execute(text(f"SELECT * FROM {t} ORDER BY 1"))).all()]
            for t in tables
        }


async def verify(db: Database) -> audit.VerifyResult:
    async with db.transaction() as s:
        return await audit.verify(s)


async def audit_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as s:
        rows = await s.execute(
            text("SELECT seq, actor, action, target, detail FROM audit_log ORDER BY seq")
        )
        return [{**r._mapping, "detail": json.loads(r.detail)} for r in rows]


async def reads(db: Database) -> list[tuple[str, str, str, list[str]]]:
    """Every `dossier.read` entry as (who, target, command, dossiers named), checking that
    its detail holds nothing else and that `audit_reads` files it under exactly those IDs."""
    rows = [r for r in await audit_rows(db) if r["action"] == "dossier.read"]
    async with db.transaction() as s:
        indexed = (await s.execute(text("SELECT seq, dossier_ref FROM audit_reads"))).all()
    filed: dict[int, list[str]] = {}
    for seq, ref in indexed:
        filed.setdefault(seq, []).append(ref)
    assert set(filed) <= {r["seq"] for r in rows}
    for r in rows:
        assert set(r["detail"]) == {"command", "dossiers"}, r
        assert sorted(filed.get(r["seq"], [])) == sorted(r["detail"]["dossiers"]), r
    return [
        (r["actor"], r["target"], r["detail"]["command"], r["detail"]["dossiers"]) for r in rows
    ]


def shown(reply: Reply, column: int = 0) -> list[str]:
    """The IDs a listing displayed, one a line: `column` of the lines split on " · "."""
    return [line.split(" · ")[column].split(" ")[0] for line in reply.lines]


# ---------------------------------------------------------------------------- retention


async def test_purge_removes_personal_data_of_old_closed_dossiers_only(
    chat: Chat, database: Database
) -> None:
    old = await old_dossier_full_of_personal_data(chat)
    still_open = await open_dossier(chat, "Visit of Anna Open", 'subjects="Anna Open"')
    chat.advance(days=365 * YEARS - 2)
    recent = await open_dossier(chat, "Visit of Bert Recent", 'subjects="Bert Recent"')
    await say_ok(chat, LIAISON, f"!dossier note {recent} Bert arrives by train")
    await say_ok(chat, LIAISON, f"!dossier close {recent} visit over")
    before_recent = text_of(await chat.say(READER, f"!dossier show {recent}"))
    chat.advance(days=5)  # the old one closed more than 5 years ago, the recent one not

    done = await purge(chat)

    assert list(done) == [old]
    assert done[old] == PersonalData(
        persons=3, notes=1, assessments=1, timeline=11, measures=2, proposals=2, audit_entries=13
    )
    dump = json.dumps(await every_row(database), default=str)
    for secret in SECRETS:
        assert secret not in dump, secret
    assert "Anna Open" in dump and "Bert arrives by train" in dump
    shown = text_of(await chat.say(READER, f"!dossier show {old}"))
    assert f"{old} — (purged)" in shown and "Purged:" in shown
    # The persons stay as numbered rows, so the year's count of persons covered holds.
    assert all(f"\n{old}/{n} (purged)\n" in shown for n in (1, 2, 3))
    async with chat.workflow() as wf:
        # The old dossier's 3 persons and Anna Open, opened the same year.
        assert await wf.persons.coverage(int(old[2:6])) == Coverage(int(old[2:6]), 2, 4)
    assert "Kind: person/other" in shown and "Status: closed" in shown
    assert (await chat.say(READER, f"!dossier show {recent}")).title.endswith("Bert Recent")
    assert "Bert Recent" in before_recent
    assert "Anna Open" in text_of(await chat.say(READER, f"!dossier show {still_open}"))
    # The tombstone still resolves, with its shape: kinds and times of the timeline stay.
    kinds = [
        line.split(" · ")[2] for line in (await chat.say(READER, f"!dossier timeline {old}")).lines
    ]
    assert kinds[0] == "opened: (purged)" and kinds[-1] == "closed: (purged)"
    assert "(purged)" in text_of(await chat.say(READER, "!measure show M-2"))
    assert old in text_of(await chat.say(READER, "!dossier list status=closed"))
    assert "Nothing found" in (await chat.say(READER, "!dossier find Peeters")).title
    exported = json.loads(
        (await chat.say(READER, f"!export {old} format=json")).attachments[0].data
    )
    assert exported["dossier"]["id"] == old and exported["dossier"]["purged"]
    # A second run finds nothing more to do.
    chat.advance(days=1)
    assert await purge(chat) == {}


async def test_purge_is_recorded_and_the_audit_chain_still_verifies(
    chat: Chat, database: Database
) -> None:
    old = await old_dossier_full_of_personal_data(chat)
    chat.advance(days=365 * YEARS + 30)
    other = await open_dossier(chat, "Someone else")
    before = await audit_rows(database)
    await purge(chat)

    result = await verify(database)
    assert result.ok, result
    rows = await audit_rows(database)
    [record] = [r for r in rows if r["action"] == "dossier.purged"]
    assert record["actor"] == OPERATOR and record["target"] == old
    assert record["detail"]["retention_years"] == YEARS
    targets = {old, "M-1", "M-2", "P-1", "P-2"}
    expected = [r["seq"] for r in before if r["target"] in targets]
    assert record["detail"]["tombstoned"] == expected
    for row in rows:
        if row["seq"] in expected:
            assert row["detail"] == {"purged": True}
            assert row["actor"] == before[row["seq"] - 1]["actor"]  # who did what stays
        elif row["seq"] <= len(before):
            assert row["detail"] == before[row["seq"] - 1]["detail"]
    assert any(r["target"] == other and r["detail"] for r in rows)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            "UPDATE audit_log SET actor = '@mallory:x' WHERE seq = {purged}",
            "does not match its hash",
        ),
        (
            "UPDATE audit_log SET detail = '{{\"purged\": true}}' WHERE seq = {kept}",
            "without a purge",
        ),
        ('UPDATE audit_log SET detail = \'{{"title": "x"}}\' WHERE seq = {kept}', "its digest"),
        ("DELETE FROM audit_log WHERE seq = {purged}", "rows missing"),
    ],
)
async def test_after_a_purge_tampering_is_still_detected(
    chat: Chat, database: Database, tamper: str, reason: str
) -> None:
    await old_dossier_full_of_personal_data(chat)
    chat.advance(days=365 * YEARS + 30)
    other = await open_dossier(chat, "Someone else")
    await purge(chat)
    rows = await audit_rows(database)
    purged = next(r["seq"] for r in rows if r["detail"] == {"purged": True})
    kept = next(r["seq"] for r in rows if r["target"] == other)
    async with insider(database) as s:
        await s.execute(text(tamper.format(purged=purged, kept=kept)))
    result = await verify(database)
    assert not result.ok and reason in result.reason
    assert result.first_broken in (purged, purged + 1, kept)


async def test_a_dossier_with_a_measure_in_force_or_pending_is_held(chat: Chat) -> None:
    ref = await open_dossier(chat, "Held")
    await say_ok(chat, LIAISON, f"!measure propose {ref} patrol pending forever")
    refused = await chat.say(LIAISON, f"!dossier close {ref} over")
    assert refused.severity is Severity.ERROR and "cannot be closed" in refused.title
    # Closed before closing was refused with measures pending (older data): still held.
    async with chat.workflow() as wf:
        await wf.store.update_dossier(ref, {"status": "closed"})
        await wf.store.add_timeline(
            ref, at=chat.now, actor=LIAISON, kind="closed", text="over", event_id="$legacy"
        )
    chat.advance(days=365 * YEARS + 1)
    async with chat.workflow() as wf:
        plan = await wf.privacy.plan(YEARS)
        assert [d.ref for d in plan.held] == [ref] and plan.due == []
        assert await wf.privacy.purge(OPERATOR, ref, YEARS) is None


async def test_reopened_and_reclosed_counts_from_the_last_closing(chat: Chat) -> None:
    ref = await open_dossier(chat, "Twice")
    await say_ok(chat, LIAISON, f"!dossier close {ref} first")
    chat.advance(days=365 * 3)
    await say_ok(chat, LIAISON, f"!dossier reopen {ref} again")
    await say_ok(chat, LIAISON, f"!dossier close {ref} second")
    chat.advance(days=365 * 3)
    assert await purge(chat) == {}
    chat.advance(days=365 * 2 + 2)
    assert list(await purge(chat)) == [ref]


def test_cutoff_counts_calendar_years() -> None:
    assert retention_cutoff(datetime(2031, 3, 1, tzinfo=UTC), 5) == datetime(2026, 3, 1, tzinfo=UTC)
    leap = retention_cutoff(datetime(2028, 2, 29, 12, tzinfo=UTC), 5)
    assert leap == datetime(2023, 2, 28, 12, tzinfo=UTC)


# ---------------------------------------------------------------------------- the CLI


def write_config(path: Path, database_url: str) -> Path:
    config = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": "@aegis:example.org",
            "password": "not-used",
        },
        "rooms": {
            "coordination": "!abc:example.org",
            "approvals": "!def:example.org",
            "operations": "!ghi:example.org",
            "early_warning": "!jkl:example.org",
        },
        "database": {"url": database_url},
        "retention": {"closed_dossier_years": YEARS},
        "audit": {"key": TEST_AUDIT_KEY},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_cli_purge_dry_run_changes_nothing_then_purges(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """The CLI runs on the real clock: a dossier closed in 2015 is due, one closed now not."""
    long_ago = make_chat(database, datetime(2015, 3, 2, 10, tzinfo=UTC))
    old = await old_dossier_full_of_personal_data(long_ago)
    today = make_chat(database, datetime.now(UTC))
    recent = await open_dossier(today, "Visit of Bert Recent")
    await say_ok(today, LIAISON, f"!dossier close {recent} over")
    await say_ok(today, READER, "!dossier list status=all")  # a read naming both: it stays
    config = write_config(tmp_path / "aegis.yaml", database_url)
    before = await every_row(database)

    code, out, err = await run_aegis("purge", "-c", str(config), "--dry-run")
    assert code == 0, err
    assert f"would purge {old} (person, closed Mon 02 Mar 2015 " in out
    assert "): 3 persons, 1 note," in out
    assert recent not in out
    assert "1 dossier would be purged; dry run, nothing changed" in out
    assert await every_row(database) == before

    code, out, err = await run_aegis("purge", "-c", str(config))
    assert code == 0, err
    assert f"purged {old}" in out and "1 dossier purged" in out
    dump = json.dumps(await every_row(database), default=str)
    assert not any(secret in dump for secret in SECRETS)
    [record] = [r for r in await audit_rows(database) if r["action"] == "dossier.purged"]
    assert record["actor"].startswith("cli:")
    [listing] = [r for r in await audit_rows(database) if r["action"] == "dossier.read"]
    assert listing["detail"] == {"command": "dossier list", "dossiers": [recent, old]}

    # No homeserver here: the chain alone (checkpoints: tests/test_audit_anchor_e2e.py).
    code, out, err = await run_aegis("audit", "verify", "-c", str(config), "--offline")
    assert code == 0, err
    assert "audit trail intact" in out


# ---------------------------------------------------------------------------- access trail


async def test_every_read_of_a_dossier_is_in_the_audit_trail(
    chat: Chat, database: Database
) -> None:
    """A command about one dossier: one entry, the dossier as its target and its only ID."""
    ref = await open_dossier(chat, "Read me")
    await say_ok(chat, LIAISON, f"!measure propose {ref} patrol around the residence")
    await chat.say(READER, f"!dossier show {ref}")
    await chat.say(READER, f"!dossier timeline {ref}")
    await chat.say(ANALYST, f"!export {ref}")
    await chat.say(ANALYST, f"!export {ref} format=json")
    await chat.say(READER, f"!threat list {ref}")
    await chat.say(MINA, "!measure show M-1")
    await chat.say(READER, "!dossier show D-2026-0999")  # no such dossier: nothing was read
    await chat.say(READER, "!measure show M-9")  # no such measure: nothing was read
    assert await reads(database) == [
        (READER, ref, "dossier show", [ref]),
        (READER, ref, "dossier timeline", [ref]),
        (ANALYST, ref, "export", [ref]),
        (ANALYST, ref, "export", [ref]),
        (READER, ref, "threat list", [ref]),
        (MINA, ref, "measure show", [ref]),
    ]
    assert (await verify(database)).ok


async def test_a_listing_records_one_read_naming_exactly_the_dossiers_it_displayed(
    chat: Chat, database: Database
) -> None:
    """list, find and approvals: one entry per command, no target, the IDs in the order
    shown (each once); an empty result names none; a refused command records nothing."""
    assert (await chat.say(MINA, "!approvals")).title.startswith("No proposal")
    assert (await chat.say(READER, "!dossier list")).title == "No dossiers match."
    assert "Nothing found" in (await chat.say(READER, "!dossier find Peeters")).title
    assert await reads(database) == [
        (MINA, "", "approvals", []),
        (READER, "", "dossier list", []),
        (READER, "", "dossier find", []),
    ]
    refs = [await open_dossier(chat, f"Visit {n}") for n in range(25)]
    chat.advance(minutes=1)
    for ref, measure in ((refs[3], "patrol first"), (refs[7], "patrol second")):
        await say_ok(chat, LIAISON, f"!measure propose {ref} {measure}")
    await say_ok(chat, LIAISON, f"!measure propose {refs[3]} close-protection third")
    before = len(await reads(database))

    first = await chat.say(READER, "!dossier list")
    second = await chat.say(READER, "!dossier list page=2")
    events = await chat.say(ANALYST, "!dossier list kind=event")
    found = await chat.say(READER, "!dossier find visit")
    one = await chat.say(READER, "!dossier find Visit 24")
    pending = await chat.say(MINA, "!approvals")
    for refused in ("!dossier list level>=7", "!dossier list status=some", "!dossier find x"):
        assert (await chat.say(READER, refused)).severity is Severity.ERROR

    assert len(shown(first)) == 20 and len(shown(second)) == 5 and len(shown(found)) == 20
    assert sorted(shown(first) + shown(second)) == sorted(refs)
    assert shown(one) == [refs[24]] and events.title == "No dossiers match."
    assert shown(pending, 2) == [refs[3], refs[7], refs[3]]
    assert (await reads(database))[before:] == [
        (READER, "", "dossier list", shown(first)),
        (READER, "", "dossier list", shown(second)),
        (ANALYST, "", "dossier list", []),
        (READER, "", "dossier find", shown(found)),  # the search text is not recorded
        (READER, "", "dossier find", [refs[24]]),
        (MINA, "", "approvals", [refs[3], refs[7]]),
    ]
    assert (await verify(database)).ok


async def test_recording_a_listing_adds_no_query_per_dossier(
    chat: Chat, database: Database
) -> None:
    """`!dossier list` showing twenty dossiers runs as many statements as showing one."""
    await open_dossier(chat, "Alone")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async def listing() -> int:
        statements.clear()
        sa.event.listen(database.engine.sync_engine, "before_cursor_execute", count)
        try:
            reply = await chat.say(READER, "!dossier list")
        finally:
            sa.event.remove(database.engine.sync_engine, "before_cursor_execute", count)
        assert reply.severity is Severity.INFO
        assert sum("audit_reads" in statement for statement in statements) == 1
        return len(statements)

    with_one = await listing()
    for n in range(24):
        await open_dossier(chat, f"Crowd {n}")
    assert await listing() == with_one
    assert [len(refs) for *_, refs in await reads(database)] == [1, 20]


async def test_audit_command_is_for_admins_and_shows_who_looked(
    chat: Chat, database: Database
) -> None:
    ref = await open_dossier(chat, "Watched")
    await chat.say(READER, f"!dossier show {ref}")
    await chat.say(ANALYST, f"!export {ref}")
    chat.advance(hours=1)
    await chat.say(READER, f"!dossier timeline {ref}")

    refused = await chat.say(LIAISON, f"!audit {ref}")
    assert refused.severity is Severity.ERROR and "admin" in refused.title
    assert (LIAISON, "refused:audit", "command:audit") in [
        (r["actor"], r["action"], r["target"]) for r in await audit_rows(database)
    ]

    reply = await chat.say(ADMIN, f"!audit {ref}")
    assert reply.title == f"Audit trail of {ref}: 4 entries, page 1/1"
    read_by = dict(reply.fields)["Read by"]
    assert read_by.startswith(f"{READER} ×2 (last Wed 25 Nov 2026 11:00)")
    assert f"{ANALYST} ×1" in read_by
    actions = [line.split(" · ")[3] for line in reply.lines]
    assert actions == [
        "dossier.read (!dossier timeline)",
        "dossier.read (!export)",
        "dossier.read (!dossier show)",
        "dossier.opened",
    ]
    assert reply.lines[1].split(" · ")[2] == ANALYST
    # Looking at the trail is itself on it.
    again = await chat.say(ADMIN, f"!audit {ref}")
    assert again.lines[0].endswith(" · audit.read")
    assert "no dossier" in (await chat.say(ADMIN, "!audit D-2026-0999")).title


async def test_audit_command_pages_newest_first(chat: Chat) -> None:
    ref = await open_dossier(chat, "Popular")
    for _ in range(24):
        await chat.say(READER, f"!dossier show {ref}")
    first = await chat.say(ADMIN, f"!audit {ref}")
    assert first.title == f"Audit trail of {ref}: 25 entries, page 1/2" and len(first.lines) == 20
    assert first.lines[0].startswith("#25 ")
    second = await chat.say(ADMIN, f"!audit {ref} page=2")  # the first look is entry 26
    assert second.title == f"Audit trail of {ref}: 26 entries, page 2/2"
    assert [line.split(" ")[0] for line in second.lines] == ["#6", "#5", "#4", "#3", "#2", "#1"]
    assert "page" in (await chat.say(ADMIN, f"!audit {ref} page=0")).title


async def test_audit_and_export_show_reads_through_listings(chat: Chat, database: Database) -> None:
    """`!audit D-x` counts every command that displayed D-x, alone or among others; a listing
    that did not display it is not on its trail. The export carries the same reads."""
    ref = await open_dossier(chat, "Listed")
    other = await open_dossier(chat, "Also listed")
    await chat.say(READER, "!dossier list")  # both
    chat.advance(hours=1)
    await chat.say(ANALYST, "!dossier find Also")  # the other one only
    await chat.say(ANALYST, f"!dossier show {ref}")
    chat.advance(hours=1)
    await say_ok(chat, LIAISON, f"!measure propose {ref} patrol around the residence")
    await chat.say(MINA, "!approvals")  # ref, through its proposal

    trail = await chat.say(ADMIN, f"!audit {ref}")
    assert trail.title == f"Audit trail of {ref}: 5 entries, page 1/1"
    assert dict(trail.fields)["Read by"] == (
        f"{MINA} ×1 (last Wed 25 Nov 2026 12:00), {ANALYST} ×1 (last Wed 25 Nov 2026 11:00), "
        f"{READER} ×1 (last Wed 25 Nov 2026 10:00)"
    )
    assert [line.split(" · ", 2)[2] for line in trail.lines] == [
        f"{MINA} · dossier.read (!approvals, 1 listed)",
        f"{LIAISON} · measure.propose",
        f"{ANALYST} · dossier.read (!dossier show)",
        f"{READER} · dossier.read (!dossier list, 2 listed)",
        f"{LIAISON} · dossier.opened",
    ]
    trail = await chat.say(ADMIN, f"!audit {other}")
    read_by = dict(trail.fields)["Read by"]
    assert read_by.startswith(f"{ANALYST} ×1") and read_by.endswith(
        f"{READER} ×1 (last Wed 25 Nov 2026 10:00)"
    )
    exported = json.loads((await chat.say(ADMIN, f"!export {ref} format=json")).attachments[0].data)
    assert [(a["actor"], a["action"], a["detail"].get("command")) for a in exported["audit"]] == [
        (LIAISON, "dossier.opened", None),
        (READER, "dossier.read", "dossier list"),
        (ANALYST, "dossier.read", "dossier show"),
        (LIAISON, "measure.propose", None),
        (MINA, "dossier.read", "approvals"),
        (ADMIN, "audit.read", None),
    ]


async def test_a_purge_tombstones_the_dossiers_own_reads_and_keeps_listings_that_named_it(
    chat: Chat, database: Database
) -> None:
    """Decided: an entry whose target is the purged dossier (a show, an export) is tombstoned
    with the rest of its trail; a listing that named it among others keeps its detail, which
    holds only a command name and IDs, and stays on both dossiers' trails."""
    old = await old_dossier_full_of_personal_data(chat)
    other = await open_dossier(chat, "Someone else")
    await chat.say(READER, f"!dossier show {old}")
    await chat.say(READER, "!dossier list status=all")
    await chat.say(ANALYST, "!dossier find Peeters")
    chat.advance(days=365 * YEARS + 1)
    before = await reads(database)
    assert before == [
        (READER, old, "dossier show", [old]),
        (READER, "", "dossier list", [other, old]),
        (ANALYST, "", "dossier find", [old]),
    ]
    assert list(await purge(chat)) == [old]

    result = await verify(database)
    assert result.ok, result
    rows = await audit_rows(database)
    [record] = [r for r in rows if r["action"] == "dossier.purged"]
    read_rows = [r for r in rows if r["action"] == "dossier.read"]
    assert [r["detail"] for r in read_rows] == [
        {"purged": True},
        {"command": "dossier list", "dossiers": [other, old]},
        {"command": "dossier find", "dossiers": [old]},
    ]
    assert read_rows[0]["seq"] in record["detail"]["tombstoned"]
    assert not {r["seq"] for r in read_rows[1:]} & set(record["detail"]["tombstoned"])
    dump = json.dumps(await every_row(database), default=str)
    assert not any(secret in dump for secret in SECRETS)
    trail = await chat.say(ADMIN, f"!audit {old}")
    assert dict(trail.fields)["Read by"].startswith(
        f"{ANALYST} ×1 (last Wed 25 Nov 2026 10:00), {READER} ×2"
    )
    assert f"{READER} · dossier.read (detail purged)" in "\n".join(trail.lines)
    assert f"{ANALYST} · dossier.read (!dossier find, 1 listed)" in "\n".join(trail.lines)
    trail = await chat.say(ADMIN, f"!audit {other}")
    assert dict(trail.fields)["Read by"].startswith(f"{READER} ×1")
    # Reading the tombstone is a read like any other, and the chain still verifies.
    await chat.say(READER, f"!dossier show {old}")
    last = (await audit_rows(database))[-1]
    assert (last["actor"], last["action"], last["target"]) == (READER, "dossier.read", old)
    assert last["detail"] == {"command": "dossier show", "dossiers": [old]}
    assert (await verify(database)).ok


@pytest.mark.parametrize(
    ("tamper", "at"),
    [
        ("DELETE FROM audit_reads WHERE seq = {listing} AND dossier_ref = '{old}'", "listing"),
        ("DELETE FROM audit_reads WHERE seq = {shown}", "shown"),
        ("UPDATE audit_reads SET dossier_ref = 'D-2026-0099' WHERE seq = {shown}", "shown"),
        ("INSERT INTO audit_reads (seq, dossier_ref) VALUES ({opened}, '{old}')", "opened"),
    ],
)
async def test_verify_checks_the_read_index_after_a_purge(
    chat: Chat, database: Database, tamper: str, at: str
) -> None:
    """`!audit`'s "Read by" comes from `audit_reads`, which the hash chain does not cover:
    verify holds it to the entries (to a tombstoned read's target), so hiding or inventing
    a read there is reported at the entry it concerns."""
    old = await old_dossier_full_of_personal_data(chat)
    await open_dossier(chat, "Someone else")
    await chat.say(READER, f"!dossier show {old}")
    await chat.say(READER, "!dossier list status=all")
    chat.advance(days=365 * YEARS + 1)
    await purge(chat)
    assert (await verify(database)).ok
    rows = await audit_rows(database)
    seqs = {
        "opened": rows[0]["seq"],
        "shown": next(r["seq"] for r in rows if r["action"] == "dossier.read" and r["target"]),
        "listing": next(
            r["seq"] for r in rows if r["action"] == "dossier.read" and not r["target"]
        ),
    }
    async with database.transaction() as s:
        await s.execute(text(tamper.format(old=old, **seqs)))
    result = await verify(database)
    assert not result.ok and result.first_broken == seqs[at], result
    assert result.reason == "read index does not match the entry"


async def test_audit_of_a_purged_dossier_still_shows_who_did_what(chat: Chat) -> None:
    ref = await old_dossier_full_of_personal_data(chat)
    await chat.say(READER, f"!dossier show {ref}")
    chat.advance(days=365 * YEARS + 1)
    await purge(chat)
    trail = await chat.say(ADMIN, f"!audit {ref}")
    assert trail.lines[0].endswith(f"{OPERATOR} · dossier.purged")
    assert any(f"{READER} · dossier.read (detail purged)" in line for line in trail.lines)
    assert any(line.endswith("proposal.rejected (P-2, detail purged)") for line in trail.lines)


# ---------------------------------------------------------------------------- migration


def _legacy_hash(seq: int, at: datetime, row: dict[str, str], prev: str) -> str:
    """The hash as migration 0005 left it: over the raw detail."""
    payload = json.dumps(
        {"seq": seq, "at": at.isoformat(), "prev": prev, **row},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


LEGACY_AUDIT = sa.table(
    "audit_log",
    *(
        sa.column(name, sa.String())
        for name in ("actor", "role", "action", "target", "event_id", "detail", "prev_hash", "hash")
    ),
    sa.column("seq", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
)


async def _unkeyed_append(s: AsyncSession, record: audit.AuditRecord, at: datetime) -> None:
    """An entry as Aegis wrote them before the audit key: plain SHA-256, unsalted digest."""
    last = (await s.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC"))).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, audit.GENESIS)
    detail = json.dumps(record.detail, sort_keys=True, ensure_ascii=False)
    digest = audit.detail_digest(detail)
    payload = audit._payload(seq, at, audit._fields(record, digest), prev)
    s.add(
        AuditEntry(
            seq=seq,
            at=at,
            actor=record.actor,
            role=record.role,
            action=record.action,
            target=record.target,
            event_id=record.event_id,
            detail=detail,
            detail_digest=digest,
            prev_hash=prev,
            hash=hashlib.sha256(payload).hexdigest(),
        )
    )
    await s.flush()


async def seal(db: Database) -> None:
    async with db.transaction() as s:
        await audit.seal(s, START)


async def _legacy_chain(db: Database, n: int) -> None:
    prev = audit.GENESIS
    async with db.engine.begin() as conn:
        for seq in range(1, n + 1):
            at = datetime(2026, 1, seq, 12, tzinfo=UTC)
            row = {
                "actor": f"@u{seq}:x",
                "role": "liaison",
                "action": "dossier.note",
                "target": "D-2026-0001",
                "event_id": f"$e{seq}",
                "detail": json.dumps({"text": f"note {seq} é"}, ensure_ascii=False),
            }
            digest = _legacy_hash(seq, at, row, prev)
            await conn.execute(
                sa.insert(LEGACY_AUDIT).values(seq=seq, at=at, prev_hash=prev, hash=digest, **row)
            )
            prev = digest


@pytest.mark.parametrize("broken", [None, 3])
async def test_migration_rechains_an_intact_legacy_chain_and_keeps_a_break_visible(
    database_url: str, broken: int | None
) -> None:
    db = Database(database_url, TEST_AUDIT_KEY.encode())
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0005")
        await _legacy_chain(db, 5)
        if broken:
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE audit_log SET actor = '@mallory:x' WHERE seq = :s"), {"s": broken}
                )
        await db.migrate()
        await seal(db)  # the bot's start: the keyed chain begins with a rekey checkpoint
        result = await verify(db)
        if broken:
            assert not result.ok and result.first_broken == broken
        else:
            assert result.ok and result.checked == 6
            async with db.transaction() as s:
                await audit.append(
                    s, audit.AuditRecord("@a:x", "", "t", "D-1", "", {}), datetime.now(UTC)
                )
            assert (await verify(db)).ok
    finally:
        await db.close()


async def test_migration_files_earlier_reads_under_their_dossier(database_url: str) -> None:
    """Before 0007 a read named its one dossier as its target and had no list of IDs: the
    migration indexes each under that target, tombstoned or not, so `!audit` still counts
    who read what; the chain is not touched."""
    db = Database(database_url, TEST_AUDIT_KEY.encode())
    first, second = "D-2026-0001", "D-2026-0002"
    legacy = [
        (READER, "dossier.read", first),
        (LIAISON, "dossier.note", first),
        (ANALYST, "dossier.read", second),
        (READER, "dossier.read", first),
    ]
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0006")
        async with db.transaction() as s:
            for n, (actor, action, target) in enumerate(legacy):
                record = audit.AuditRecord(actor, "", action, target, f"$e{n}", {"command": "x"})
                await _unkeyed_append(s, record, START)
            # What a purge did then, before the guard of migration 0018 existed.
            await s.execute(
                text("UPDATE audit_log SET detail = :t WHERE seq = 4"), {"t": audit.TOMBSTONE}
            )
            purged = audit.AuditRecord(
                OPERATOR, "", "dossier.purged", first, "", {"tombstoned": [4]}
            )
            await _unkeyed_append(s, purged, START)
        await db.migrate()
        await seal(db)
        async with db.transaction() as s:
            indexed = await s.execute(text("SELECT dossier_ref, seq FROM audit_reads ORDER BY seq"))
            assert [tuple(r) for r in indexed] == [(first, 1), (second, 3), (first, 4)]
            assert await audit.readers_of(s, first) == [(READER, 2, START)]
            assert await audit.readers_of(s, second) == [(ANALYST, 1, START)]
        assert (await verify(db)).ok
    finally:
        await db.close()
