"""`aegis purge`: remove the personal data of dossiers closed longer ago than
`retention.closed_dossier_years`, leaving tombstones (see workflow/privacy.py), and of
early-warning reports, sector warnings and webhooks last acted on longer ago than
`retention.early_warning_days` (workflow/early_warning_retention.py). Run by an operator on
the server, so it is audited as `cli:<login>`."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

import bot
from bot import erasure
from bot.app import access_policy, open_database, policy
from commands.formatting import count, when
from config import Settings, add_config_option
from storage import outbox
from storage.db import Database
from storage.store import Store
from workflow import RuntimeInfo, Workflow
from workflow.early_warning_retention import EarlyWarningPlan
from workflow.privacy import ClosedDossier


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = sub.add_parser(
        "purge",
        help="remove personal data of dossiers closed longer ago than "
        "retention.closed_dossier_years, and of early warning older than "
        "retention.early_warning_days, keeping tombstones",
    )
    add_config_option(purge)
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be purged; change nothing"
    )


def _line(dossier: ClosedDossier, tz: ZoneInfo) -> str:
    return f"{dossier.ref} ({dossier.kind}, closed {when(dossier.closed_at, tz)})"


class _Purge:
    """One transaction per dossier, report or warning: an interrupted purge leaves only
    whole tombstones."""

    def __init__(self, settings: Settings, db: Database, dry_run: bool) -> None:
        self.settings = settings
        self.db = db
        self.dry_run = dry_run
        self.now = datetime.now(UTC)
        self.actor = f"cli:{getpass.getuser()}"
        self.access, self.rules = access_policy(settings), policy(settings)
        self.tz = self.rules.timezone
        self.info = RuntimeInfo(bot.__version__, self.now)

    def workflow(self, session: AsyncSession) -> Workflow:
        return Workflow(Store(session), self.now, self.access, self.info, self.rules)

    async def dossiers(self) -> None:
        years = self.settings.retention.closed_dossier_years
        async with self.db.transaction() as session:
            privacy = self.workflow(session).privacy
            plan = await privacy.plan(years)
            due = [(d, await privacy.personal_data(d.ref)) for d in plan.due]
        print(f"retention {years} years: dossiers closed by {when(plan.cutoff, self.tz)}")
        for held in plan.held:
            in_force = count(held.in_force, "measure")
            print(f"held {_line(held, self.tz)}: {in_force} in force or proposed")
        purged = 0
        for dossier, data in due:
            if self.dry_run:
                print(f"would purge {_line(dossier, self.tz)}: {data.describe()}")
                continue
            queued = 0
            async with self.db.transaction() as session:
                workflow = self.workflow(session)
                removed = await workflow.privacy.purge(self.actor, dossier.ref, years)
                if removed is not None:
                    user = self.settings.matrix.user_id
                    queued = await erasure.erase(session, dossier.ref, user, self.now)
            if removed is None:
                print(f"skipped {_line(dossier, self.tz)}: no longer due")
            else:
                purged += 1
                print(f"purged {_line(dossier, self.tz)}: {removed.describe()}")
                print(f"  {count(queued, 'homeserver task')} queued for the bot")
        if self.dry_run:
            print(f"{count(len(due), 'dossier')} would be purged; dry run, nothing changed")
        else:
            print(f"{count(purged, 'dossier')} purged")

    async def early_warning(self) -> None:
        days = self.settings.retention.early_warning_days
        async with self.db.transaction() as session:
            plan = await self.workflow(session).ew_retention.plan(days)
        print(f"retention {days} days: early warning last acted on by {when(plan.cutoff, self.tz)}")
        for warning in plan.held:
            print(f"held {warning.ref} (drafted {when(warning.last_change, self.tz)}): pending")
        if self.dry_run:
            self._would(plan)
            return
        reports = await self._each(
            [
                (r.id, f"{r.ref} (last changed {when(r.last_change, self.tz)})")
                for r in plan.reports
            ],
            lambda wf, id: wf.ew_retention.purge_report(self.actor, id, days),
        )
        warnings = await self._each(
            [(w.id, f"{w.ref} ({w.state}, {when(w.last_change, self.tz)})") for w in plan.warnings],
            lambda wf, id: wf.ew_retention.purge_warning(self.actor, id, days),
        )
        async with self.db.transaction() as session:
            webhooks = await self.workflow(session).ew_retention.purge_webhooks(self.actor, days)
        print(
            f"{count(reports, 'report')}, {count(warnings, 'warning')} and "
            f"{count(webhooks, 'webhook')} purged"
        )

    def _would(self, plan: EarlyWarningPlan) -> None:
        for report in plan.reports:
            print(f"would purge {report.ref} (last changed {when(report.last_change, self.tz)})")
        for warning in plan.warnings:
            print(
                f"would purge {warning.ref} ({warning.state}, {when(warning.last_change, self.tz)})"
            )
        print(
            f"{count(len(plan.reports), 'report')}, {count(len(plan.warnings), 'warning')} and "
            f"{count(plan.webhooks, 'webhook')} would be purged; dry run, nothing changed"
        )

    async def _each(
        self, due: list[tuple[int, str]], purge: Callable[[Workflow, int], Awaitable[bool]]
    ) -> int:
        purged = 0
        for id, line in due:
            async with self.db.transaction() as session:
                done = await purge(self.workflow(session), id)
            purged += done
            print(f"purged {line}" if done else f"skipped {line}: no longer due")
        return purged


async def run(settings: Settings, args: argparse.Namespace) -> int:
    db = open_database(settings)
    try:
        await db.migrate()
        purge = _Purge(settings, db, args.dry_run)
        await purge.dossiers()
        await purge.early_warning()
        if not args.dry_run:
            # Then the outbox drops the content past its grace window, and SQLite's log is
            # emptied of old page images (bot/erasure.py queued the homeserver's part).
            grace = timedelta(minutes=settings.retention.outbox_grace_minutes)
            async with db.transaction() as session:
                await outbox.drop_content(session, purge.now - grace)
            await db.compact_log()
    finally:
        await db.close()
    return 0
