"""Early-warning retention: `aegis purge` blanks what companies and partners wrote in reports,
the text of sector warnings and webhook payloads once `retention.early_warning_days` have
passed, keeps the rows others refer to, tombstones their audit details (the chain still
verifies), and `--dry-run` lists them. SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, text

from bot import purge_cli
from commands import Severity
from config import Role, load_settings
from storage import audit
from storage.db import Database
from storage.early_warning import EarlyWarningStore
from storage.tables import Base
from tests.support.chat import START, Chat, text_of
from tests.support.databases import TEST_AUDIT_KEY
from workflow.early_warning_model import Category, NewPartner, ReportInput, Sector
from workflow.early_warning_refs import warning_ref

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
MINA = "@mina:aegis.test"
OPERATOR = "cli:operator"
DAYS = 365
# What the old report, its triage and its warning hold about people: none may survive.
SECRETS = (
    "Karel Smet",
    "Rue Haute 12",
    "1-XYZ-999",
    "1XYZ999",
    "rue haute 12",
    "karel.witness@example.org",
    "photo-of-karel.jpg",
    "smet-report-7",
    "known to the police",
    "belongs to Smet",
    "50.8111",
)


def make_chat(db: Database, now: datetime = START) -> Chat:
    return Chat(db, {LIAISON: {Role.LIAISON}, ANALYST: {Role.ANALYST}, MINA: {Role.APPROVER}}, now)


async def partner(chat: Chat, name: str, webhook: str | None = None) -> NewPartner:
    async with chat.workflow() as wf:
        return await wf.early_warning.add_partner("cli:op", name, Sector.ENERGY, webhook)


async def ok(chat: Chat, user: str, text: str) -> str:
    reply = await chat.say(user, text)
    assert reply.severity is not Severity.ERROR, text_of(reply)
    return text_of(reply)


async def old_report_full_of_personal_data(chat: Chat) -> None:
    """EW-1 from Elia, assessed and closed with notes; W-1 drafted from it, approved, sent by
    webhook to Elia and fetched by Fluxys; W-2 still pending. All at the chat's time."""
    elia = await partner(chat, "Elia", webhook="http://127.0.0.1:9/hook")
    fluxys = await partner(chat, "Fluxys")
    report = ReportInput(
        observed_at=chat.now - timedelta(hours=1),
        location="Rue Haute 12",
        category=Category.VEHICLE,
        description="grey van, driver Karel Smet photographed the gate",
        lat=50.8111,
        lon=4.3522,
        vehicle_plate="1-XYZ-999",
        contact="karel.witness@example.org",
        attachments=("photo-of-karel.jpg",),
    )
    async with chat.workflow() as wf:
        await wf.early_warning.submit(elia.partner, report, "smet-report-7")
    await ok(chat, LIAISON, "!ew assess EW-1 suspicious driver known to the police")
    await ok(chat, LIAISON, "!ew close EW-1 the van belongs to Smet")
    await ok(chat, LIAISON, '!ew warn sector=energy "Watch for 1-XYZ-999 (Karel Smet)" from=EW-1')
    await chat.posted(warning_ref(1), "$w1")
    assert (await chat.react(MINA, "$w1")).warning is not None
    await ok(chat, LIAISON, '!ew warn sector=energy "drones over sites"')  # W-2, pending
    async with chat.workflow() as wf:
        await wf.early_warning.warnings_for(fluxys.partner)
    async with chat.db.transaction() as session:
        store = EarlyWarningStore(session)
        for hook in await store.due_webhooks(chat.now, 50):
            await store.webhook_attempted(
                hook.id, attempts=1, next_attempt_at=None, delivered_at=chat.now
            )


async def recent_report(chat: Chat) -> None:
    async with chat.workflow() as wf:
        [elia, *_] = await wf.early_warning.partners()
        recent = ReportInput(chat.now, "Gate 9", Category.PERSON, "Bert Recent at the fence")
        await wf.early_warning.submit(elia, recent)


async def dump(db: Database) -> str:
    """Every row of every table, as text."""
    rows: dict[str, list[Any]] = {}
    async with db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            found = await session.execute(select(table))
            rows[table.name] = [tuple(r) for r in found.all()]
    return json.dumps(rows, default=str, ensure_ascii=False)


async def purge(chat: Chat) -> tuple[list[str], list[str], int]:
    """What `aegis purge` does for early warning, at the chat's time."""
    async with chat.workflow() as wf:
        plan = await wf.ew_retention.plan(DAYS)
    reports, warnings = [], []
    for report in plan.reports:
        async with chat.workflow() as wf:
            assert await wf.ew_retention.purge_report(OPERATOR, report.id, DAYS)
        reports.append(report.ref)
    for warning in plan.warnings:
        async with chat.workflow() as wf:
            assert await wf.ew_retention.purge_warning(OPERATOR, warning.id, DAYS)
        warnings.append(warning.ref)
    async with chat.workflow() as wf:
        webhooks = await wf.ew_retention.purge_webhooks(OPERATOR, DAYS)
    return reports, warnings, webhooks


async def audit_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = await session.execute(
            text("SELECT seq, action, target, detail FROM audit_log ORDER BY seq")
        )
        return [{**r._mapping, "detail": json.loads(r.detail)} for r in rows]


async def test_old_reports_warnings_and_webhooks_are_blanked_recent_ones_kept(
    database: Database,
) -> None:
    chat = make_chat(database)
    await old_report_full_of_personal_data(chat)
    before = await dump(database)
    assert all(secret in before for secret in SECRETS)
    chat.advance(days=DAYS - 2)
    await recent_report(chat)
    chat.advance(days=1)
    assert await purge(chat) == ([], [], 0)  # a day short of the retention: nothing due
    chat.advance(days=2)
    async with chat.workflow() as wf:
        plan = await wf.ew_retention.plan(DAYS)
    assert [w.ref for w in plan.held] == ["W-2"]  # pending: approved later, it would be blank

    assert await purge(chat) == (["EW-1"], ["W-1"], 3)

    after = await dump(database)
    for secret in SECRETS:
        assert secret not in after, secret
    assert "Bert Recent at the fence" in after and "drones over sites" in after
    async with database.transaction() as session:
        result = await audit.verify(session)
    assert result.ok, result
    rows = await audit_rows(database)
    purges = {r["target"]: r for r in rows if r["action"] in ("ew.purged", "warning.purged")}
    tombstoned = [r["seq"] for r in rows if r["detail"] == {"purged": True}]
    assert tombstoned and sorted(
        purges["EW-1"]["detail"]["tombstoned"] + purges["W-1"]["detail"]["tombstoned"]
    ) == sorted(tombstoned)
    assert {r["target"] for r in rows if r["seq"] in tombstoned} == {"EW-1", "W-1"}
    # The tombstones still resolve: IDs, states and who received the warning stay.
    shown = await ok(chat, ANALYST, "!ew show EW-1")
    assert "(purged)" in shown and "Status: closed" in shown
    assert "2 of 2 received" in await ok(chat, ANALYST, "!ew deliveries W-1")
    assert "Bert Recent" in await ok(chat, ANALYST, "!ew show EW-2")
    # A purged report correlates with nothing new; a second run finds nothing.
    async with chat.workflow() as wf:
        [elia, *_] = await wf.early_warning.partners()
        again = ReportInput(
            chat.now, "Rue Haute 12", Category.VEHICLE, "x", 50.8111, 4.3522, "1-XYZ-999"
        )
        assert (await wf.early_warning.submit(elia, again)).correlated == ()
    assert await purge(chat) == ([], [], 0)


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
        "retention": {"early_warning_days": DAYS},
        "audit": {"key": TEST_AUDIT_KEY},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_cli_purge_dry_run_lists_then_purges(
    database: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aegis purge` (in process: test_retention.py runs the real command line) on the real
    clock: what was reported in 2015 is due, what was reported now is not."""
    await old_report_full_of_personal_data(
        make_chat(database, datetime(2015, 3, 2, 10, tzinfo=UTC))
    )
    await recent_report(make_chat(database, datetime.now(UTC)))
    settings = load_settings(write_config(tmp_path / "aegis.yaml", database_url))
    before = await dump(database)

    assert await purge_cli.run(settings, argparse.Namespace(dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "would purge EW-1 (last changed Mon 02 Mar 2015 " in out
    assert "would purge W-1 (approved, Mon 02 Mar 2015 " in out
    assert "held W-2 (drafted Mon 02 Mar 2015 " in out and "EW-2" not in out
    assert "1 report, 1 warning and 3 webhooks would be purged; dry run, nothing changed" in out
    assert await dump(database) == before

    assert await purge_cli.run(settings, argparse.Namespace(dry_run=False)) == 0
    out = capsys.readouterr().out
    assert "purged EW-1 (last changed Mon 02 Mar 2015 " in out
    assert "1 report, 1 warning and 3 webhooks purged" in out
    after = await dump(database)
    assert [secret for secret in SECRETS if secret in after] == []
    assert "Bert Recent at the fence" in after
    async with database.transaction() as session:
        assert (await audit.verify(session)).ok
