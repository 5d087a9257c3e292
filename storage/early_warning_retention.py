"""Queries behind early-warning retention (workflow/early_warning_retention.py): which
reports, warnings and webhooks are due, and the purges that blank them in place."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage import audit
from storage.dossiers import aware
from storage.tables import ReportRow, WarningRow, WebhookRow
from workflow.early_warning_model import WarningState
from workflow.early_warning_retention import OldReport, OldWarning

PURGED_PAYLOAD = json.dumps({"purged": True})
_WARNING_CHANGED = func.coalesce(WarningRow.decided_at, WarningRow.created_at)
_WEBHOOK_DONE = func.coalesce(WebhookRow.delivered_at, WebhookRow.failed_at, WebhookRow.created_at)


def _due_report(cutoff: datetime) -> ColumnElement[bool]:
    return and_(ReportRow.purged_at.is_(None), ReportRow.updated_at <= cutoff)


def _due_warning(cutoff: datetime) -> ColumnElement[bool]:
    return and_(WarningRow.purged_at.is_(None), _WARNING_CHANGED <= cutoff)  # noqa: SIM300


def _due_webhook(cutoff: datetime) -> ColumnElement[bool]:
    """Done (no attempt left), and done long enough ago."""
    return and_(
        WebhookRow.purged_at.is_(None),
        WebhookRow.next_attempt_at.is_(None),
        _WEBHOOK_DONE <= cutoff,  # noqa: SIM300
    )


def _blanked(
    column: InstrumentedAttribute[str | None], placeholder: str
) -> ColumnElement[str | None]:
    """The placeholder where there was a text, NULL where there was none."""
    return case((column.is_(None), None), else_=placeholder)


class EarlyWarningRetentionStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def old_reports(self, cutoff: datetime) -> list[OldReport]:
        rows = await self.session.execute(
            select(ReportRow.id, ReportRow.updated_at)
            .where(_due_report(cutoff))
            .order_by(ReportRow.id)
        )
        return [OldReport(id, aware(at)) for id, at in rows.all()]

    async def old_warnings(self, cutoff: datetime) -> list[OldWarning]:
        """Due warnings, and pending ones that would be (the caller holds those)."""
        rows = await self.session.execute(
            select(WarningRow.id, WarningRow.state, _WARNING_CHANGED)
            .where(_due_warning(cutoff))
            .order_by(WarningRow.id)
        )
        return [OldWarning(id, WarningState(state), aware(at)) for id, state, at in rows.all()]

    async def old_webhooks(self, cutoff: datetime) -> int:
        query = select(func.count(WebhookRow.id)).where(_due_webhook(cutoff))
        return int(await self.session.scalar(query) or 0)

    async def purge_report(
        self, report_id: int, cutoff: datetime, now: datetime, placeholder: str
    ) -> list[int] | None:
        """Blanks what the company and the partners wrote; the audit seqs it tombstoned, or
        None if the report is not due (any more)."""
        result = await self.session.execute(
            update(ReportRow)
            .where(ReportRow.id == report_id, _due_report(cutoff))
            .values(
                location=placeholder,
                lat=None,
                lon=None,
                description=placeholder,
                vehicle_plate=None,
                plate_key="",
                site_key="",
                contact=None,
                attachments="[]",
                note=_blanked(ReportRow.note, placeholder),
                closed_reason=_blanked(ReportRow.closed_reason, placeholder),
                idempotency_key=None,
                purged_at=now,
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        return await self._tombstone(f"EW-{report_id}")

    async def purge_warning(
        self, warning_id: int, cutoff: datetime, now: datetime, placeholder: str
    ) -> list[int] | None:
        """Blanks a decided warning's text; None if it is pending or not due (any more)."""
        result = await self.session.execute(
            update(WarningRow)
            .where(
                WarningRow.id == warning_id,
                WarningRow.state != WarningState.PENDING.value,
                _due_warning(cutoff),
            )
            .values(text=placeholder, purged_at=now)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        return await self._tombstone(f"W-{warning_id}")

    async def purge_webhooks(self, cutoff: datetime, now: datetime) -> int:
        result = await self.session.execute(
            update(WebhookRow)
            .where(_due_webhook(cutoff))
            .values(payload=PURGED_PAYLOAD, purged_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _tombstone(self, target: str) -> list[int]:
        seqs = await audit.seqs_for(self.session, [target])
        await audit.tombstone(self.session, seqs)
        await self.session.flush()
        return seqs
