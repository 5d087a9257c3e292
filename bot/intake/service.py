"""What the HTTP handlers may do, each in one transaction: authenticate a partner, take in a
report (and enqueue its posts with it), read back a partner's own reports and warnings.

A report is stored even while the Matrix side is down or not yet set up; its posts are
enqueued in the same transaction when the pipeline is ready, or by `announce_pending` once
it is, so none is lost and none posted twice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from commands.early_warning_views import report_posted
from commands.replies import Announcement
from storage.db import Database
from workflow import Workflow
from workflow.early_warning import Submitted
from workflow.early_warning_model import Partner, Report, ReportInput, SectorWarning

log = logging.getLogger(__name__)

Announce = Callable[[AsyncSession, str, tuple[Announcement, ...]], Awaitable[None]]


@dataclass(frozen=True)
class RateLimited:
    retry_after: timedelta


class Intake:
    def __init__(
        self,
        db: Database,
        workflow: Callable[[AsyncSession], Workflow],
        tz: ZoneInfo,
        public_url: str,
        on_report: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.workflow = workflow
        self.tz = tz
        self.public_url = public_url
        self.on_report = on_report
        self._announce: Announce | None = None

    def status_url(self, report: Report) -> str:
        return f"{self.public_url}/api/v1/reports/{report.ref}"

    async def authenticate(self, token: str, remote: str) -> Partner | None:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.authenticate(token, remote)

    async def partner(self, partner_id: int) -> Partner | None:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.store.partner(partner_id)

    async def submit(
        self, partner: Partner, report: ReportInput, idempotency_key: str | None = None
    ) -> Submitted | RateLimited:
        async with self.db.transaction() as session:
            rules = self.workflow(session).early_warning
            wait = await rules.retry_after(partner)
            if wait is not None:
                await rules.wf.refuse(partner.ref, "ew.report", "", "", "rate limit")
                return RateLimited(wait)
            submitted = await rules.submit(partner, report, idempotency_key)
            if not submitted.duplicate:
                await self._post(session, submitted.report.id)
        if not submitted.duplicate:
            self.on_report()
        return submitted

    async def report(self, partner: Partner, report_id: int) -> Report | None:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.for_partner(partner, report_id)

    async def own_reports(self, partner: Partner, limit: int) -> list[Report]:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.own_reports(partner, limit)

    async def warnings(self, partner: Partner) -> list[SectorWarning]:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.warnings_for(partner)

    async def ready(self, announce: Announce) -> None:
        """The rooms are known: post what came in before, and from now on at once."""
        self._announce = announce
        async with self.db.transaction() as session:
            pending = await self.workflow(session).early_warning.unannounced()
        for report_id in pending:
            async with self.db.transaction() as session:
                await self._post(session, report_id)
        if pending:
            log.info(
                "posted %d early-warning reports taken in before the rooms were ready", len(pending)
            )

    async def _post(self, session: AsyncSession, report_id: int) -> None:
        if self._announce is None:
            return
        rules = self.workflow(session).early_warning
        submitted = await rules.announce(report_id)
        if submitted is not None:
            posts = report_posted(submitted, rules.policy.pattern_threshold, self.tz)
            await self._announce(session, f"ew:{submitted.report.ref}", posts)
