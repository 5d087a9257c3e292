"""`aegis purge`: remove the personal data of dossiers closed longer ago than
`retention.closed_dossier_years`, leaving tombstones (see workflow/privacy.py). Run by an
operator on the server, so it is audited as `cli:<login>`."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import bot
from bot import erasure
from bot.app import access_policy, policy
from commands.formatting import count, when
from config import Settings, add_config_option
from storage import outbox
from storage.db import Database
from storage.store import Store
from workflow import RuntimeInfo, Workflow
from workflow.privacy import ClosedDossier


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = sub.add_parser(
        "purge",
        help="remove personal data of dossiers closed longer ago than "
        "retention.closed_dossier_years, keeping tombstones",
    )
    add_config_option(purge)
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be purged; change nothing"
    )


def _line(dossier: ClosedDossier, tz: ZoneInfo) -> str:
    return f"{dossier.ref} ({dossier.kind}, closed {when(dossier.closed_at, tz)})"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """One transaction per dossier: an interrupted purge leaves only whole tombstones, each
    with its homeserver work queued for the bot (bot/erasure.py). Then the outbox drops
    the content past its grace window, and SQLite's log is emptied of old page images."""
    years = settings.retention.closed_dossier_years
    now = datetime.now(UTC)
    actor = f"cli:{getpass.getuser()}"
    access, rules = access_policy(settings), policy(settings)
    tz = rules.timezone
    info = RuntimeInfo(bot.__version__, now)
    db = Database(settings.database.url)
    purged = 0
    try:
        await db.migrate()
        async with db.transaction() as session:
            privacy = Workflow(Store(session), now, access, info, rules).privacy
            plan = await privacy.plan(years)
            due = [(d, await privacy.personal_data(d.ref)) for d in plan.due]
        print(f"retention {years} years: dossiers closed by {when(plan.cutoff, tz)}")
        for held in plan.held:
            print(f"held {_line(held, tz)}: {count(held.in_force, 'measure')} in force or proposed")
        for dossier, data in due:
            if args.dry_run:
                print(f"would purge {_line(dossier, tz)}: {data.describe()}")
                continue
            queued = 0
            async with db.transaction() as session:
                workflow = Workflow(Store(session), now, access, info, rules)
                removed = await workflow.privacy.purge(actor, dossier.ref, years)
                if removed is not None:
                    user = settings.matrix.user_id
                    queued = await erasure.erase(session, dossier.ref, user, now)
            if removed is None:
                print(f"skipped {_line(dossier, tz)}: no longer due")
            else:
                purged += 1
                print(f"purged {_line(dossier, tz)}: {removed.describe()}")
                print(f"  {count(queued, 'homeserver task')} queued for the bot")
        if not args.dry_run:
            grace = timedelta(minutes=settings.retention.outbox_grace_minutes)
            async with db.transaction() as session:
                await outbox.drop_content(session, now - grace)
            await db.compact_log()
    finally:
        await db.close()
    if args.dry_run:
        print(f"{count(len(due), 'dossier')} would be purged; dry run, nothing changed")
    else:
        print(f"{count(purged, 'dossier')} purged")
    return 0
