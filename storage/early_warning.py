"""Queries for partners, reports, sector warnings, their votes, webhooks and deliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dossiers import aware, utc_or_none
from storage.tables import (
    DeliveryRow,
    PartnerRow,
    ReportRow,
    WarningRow,
    WarningVoteRow,
    WebhookRow,
)
from storage.votes import VoteTable
from workflow.early_warning_model import (
    Category,
    Delivery,
    Partner,
    Report,
    ReportInput,
    ReportStatus,
    Sector,
    SectorWarning,
    WarningState,
)
from workflow.model import Choice, Vote


def partner_record(row: PartnerRow) -> Partner:
    return Partner(
        id=row.id,
        name=row.name,
        sector=Sector(row.sector),
        webhook_url=row.webhook_url,
        created_at=aware(row.created_at),
        revoked_at=utc_or_none(row.revoked_at),
    )


def report_record(row: ReportRow, partner: PartnerRow) -> Report:
    return Report(
        id=row.id,
        partner_id=row.partner_id,
        partner_name=partner.name,
        sector=Sector(partner.sector),
        received_at=aware(row.received_at),
        input=ReportInput(
            observed_at=aware(row.observed_at),
            location=row.location,
            category=Category(row.category),
            description=row.description,
            lat=row.lat,
            lon=row.lon,
            vehicle_plate=row.vehicle_plate,
            contact=row.contact,
            attachments=tuple(json.loads(row.attachments)),
        ),
        status=ReportStatus(row.status),
        note=row.note,
        assessed_by=row.assessed_by,
        closed_reason=row.closed_reason,
        dossier_ref=row.dossier_ref,
        updated_at=aware(row.updated_at),
    )


def warning_record(row: WarningRow) -> SectorWarning:
    return SectorWarning(
        id=row.id,
        sector=row.sector,
        text=row.text,
        from_report=row.from_report,
        drafted_by=row.drafted_by,
        state=WarningState(row.state),
        created_at=aware(row.created_at),
        decided_at=utc_or_none(row.decided_at),
        decided_by=row.decided_by,
    )


@dataclass(frozen=True)
class DueWebhook:
    """A webhook to try now; `url` is None if the partner has none any more or is revoked."""

    id: int
    kind: str
    subject: str
    payload: dict[str, Any]
    attempts: int
    partner_id: int
    url: str | None
    secret: str


class EarlyWarningStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.votes_table = VoteTable(session, WarningVoteRow, "warning_id")

    # --- partners -------------------------------------------------------------------------

    async def add_partner(
        self,
        name: str,
        sector: Sector,
        webhook_url: str | None,
        token_hash: str,
        webhook_secret: str,
        now: datetime,
    ) -> Partner:
        row = PartnerRow(
            name=name,
            sector=sector.value,
            webhook_url=webhook_url,
            token_hash=token_hash,
            webhook_secret=webhook_secret,
            created_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return partner_record(row)

    async def partner(self, partner_id: int) -> Partner | None:
        row = await self.session.get(PartnerRow, partner_id)
        return partner_record(row) if row else None

    async def partner_by_token_hash(self, token_hash: str) -> Partner | None:
        row = (
            await self.session.scalars(
                select(PartnerRow).where(
                    PartnerRow.token_hash == token_hash, PartnerRow.revoked_at.is_(None)
                )
            )
        ).first()
        return partner_record(row) if row else None

    async def partners(self, sector: str | None = None) -> list[Partner]:
        """Every partner, revoked ones included (they are marked so); one sector or all."""
        query = select(PartnerRow).order_by(PartnerRow.id)
        if sector is not None:
            query = query.where(PartnerRow.sector == sector)
        return [partner_record(r) for r in await self.session.scalars(query)]

    async def update_partner(self, partner_id: int, fields: dict[str, Any]) -> bool:
        result = await self.session.execute(
            update(PartnerRow).where(PartnerRow.id == partner_id).values(**fields)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def webhook_secret(self, partner_id: int) -> str:
        return (
            await self.session.execute(
                select(PartnerRow.webhook_secret).where(PartnerRow.id == partner_id)
            )
        ).scalar_one()

    # --- reports --------------------------------------------------------------------------

    def _reports(self) -> Select[ReportRow, PartnerRow]:
        return select(ReportRow, PartnerRow).join(PartnerRow, ReportRow.partner_id == PartnerRow.id)

    async def insert_report(
        self,
        partner_id: int,
        report: ReportInput,
        plate_key: str,
        site_key: str,
        idempotency_key: str | None,
        now: datetime,
    ) -> Report:
        row = ReportRow(
            partner_id=partner_id,
            received_at=now,
            # SQLite keeps the wall time but drops the offset: store UTC only.
            observed_at=report.observed_at.astimezone(UTC),
            location=report.location,
            lat=report.lat,
            lon=report.lon,
            category=report.category.value,
            description=report.description,
            vehicle_plate=report.vehicle_plate,
            # Normalising may lengthen a text (ß → SS); the keys only ever compare.
            plate_key=plate_key[: ReportRow.plate_key.type.length],
            site_key=site_key[: ReportRow.site_key.type.length],
            contact=report.contact,
            attachments=json.dumps(list(report.attachments)),
            status=ReportStatus.NEW.value,
            updated_at=now,
            idempotency_key=idempotency_key,
            announced=False,
        )
        self.session.add(row)
        await self.session.flush()
        found = await self.report(row.id)
        assert found is not None
        return found

    async def report(self, report_id: int) -> Report | None:
        row = (await self.session.execute(self._reports().where(ReportRow.id == report_id))).first()
        return report_record(*row) if row else None

    async def report_by_key(self, partner_id: int, idempotency_key: str) -> Report | None:
        row = (
            await self.session.execute(
                self._reports().where(
                    ReportRow.partner_id == partner_id,
                    ReportRow.idempotency_key == idempotency_key,
                )
            )
        ).first()
        return report_record(*row) if row else None

    async def partner_reports(self, partner_id: int, limit: int) -> list[Report]:
        """One partner's reports, newest first (ix_ew_reports_partner_received serves it)."""
        rows = await self.session.execute(
            self._reports()
            .where(ReportRow.partner_id == partner_id)
            .order_by(ReportRow.received_at.desc(), ReportRow.id.desc())
            .limit(limit)
        )
        return [report_record(*r) for r in rows.all()]

    async def reports(
        self, statuses: Sequence[ReportStatus] | None, offset: int, limit: int
    ) -> tuple[list[Report], int]:
        query = self._reports()
        counted = select(func.count(ReportRow.id))
        if statuses is not None:
            wanted = ReportRow.status.in_([s.value for s in statuses])
            query, counted = query.where(wanted), counted.where(wanted)
        rows = await self.session.execute(
            query.order_by(ReportRow.id.desc()).offset(offset).limit(limit)
        )
        total = (await self.session.execute(counted)).scalar_one()
        return [report_record(*r) for r in rows.all()], total

    async def candidates(
        self,
        report: Report,
        since: datetime,
        until: datetime,
        box: tuple[float, float, float, float] | None,
    ) -> list[Report]:
        """Reports in the window that share the plate or the site, or lie in the bounding box
        (lat_min, lat_max, lon_min, lon_max); the caller checks the exact distance."""
        shared = []
        if report.plate_key:
            shared.append(ReportRow.plate_key == report.plate_key)
        if report.site_key:
            shared.append(ReportRow.site_key == report.site_key)
        if box is not None:
            shared.append(
                and_(
                    ReportRow.lat.between(box[0], box[1]),
                    ReportRow.lon.between(box[2], box[3]),
                )
            )
        if not shared:
            return []
        rows = await self.session.execute(
            self._reports()
            .where(
                ReportRow.id != report.id,
                ReportRow.observed_at.between(since, until),
                or_(*shared),
            )
            .order_by(ReportRow.observed_at, ReportRow.id)
        )
        return [report_record(*r) for r in rows.all()]

    async def received_since(self, partner_id: int, since: datetime) -> list[datetime]:
        """When this partner's reports arrived, oldest first: the rate limit's window."""
        rows = await self.session.scalars(
            select(ReportRow.received_at)
            .where(ReportRow.partner_id == partner_id, ReportRow.received_at > since)
            .order_by(ReportRow.received_at)
        )
        return [aware(r) for r in rows]

    async def update_report(self, report_id: int, fields: dict[str, Any]) -> None:
        await self.session.execute(
            update(ReportRow).where(ReportRow.id == report_id).values(**fields)
        )

    async def unannounced(self) -> list[int]:
        rows = await self.session.scalars(
            select(ReportRow.id).where(ReportRow.announced.is_(False)).order_by(ReportRow.id)
        )
        return list(rows)

    async def mark_announced(self, report_id: int) -> bool:
        """True once: the report's post is enqueued by exactly one transaction."""
        result = await self.session.execute(
            update(ReportRow)
            .where(ReportRow.id == report_id, ReportRow.announced.is_(False))
            .values(announced=True)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- warnings and their votes ---------------------------------------------------------

    async def add_warning(self, fields: dict[str, Any]) -> SectorWarning:
        row = WarningRow(**fields)
        self.session.add(row)
        await self.session.flush()
        return warning_record(row)

    async def warning(self, warning_id: int, lock: bool = False) -> SectorWarning | None:
        """With `lock`, re-read under a row lock, so votes are counted one at a time."""
        query = select(WarningRow).where(WarningRow.id == warning_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = (await self.session.scalars(query)).first()
        return warning_record(row) if row else None

    async def warnings(self, states: Sequence[WarningState], limit: int) -> list[SectorWarning]:
        rows = await self.session.scalars(
            select(WarningRow)
            .where(WarningRow.state.in_([s.value for s in states]))
            .order_by(WarningRow.id.desc())
            .limit(limit)
        )
        return [warning_record(r) for r in rows]

    async def close_warning(
        self, warning_id: int, state: WarningState, by: str, at: datetime
    ) -> bool:
        result = await self.session.execute(
            update(WarningRow)
            .where(WarningRow.id == warning_id, WarningRow.state == WarningState.PENDING.value)
            .values(state=state.value, decided_by=by, decided_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_vote(
        self, warning_id: int, voter: str, choice: Choice, reaction_event_id: str, at: datetime
    ) -> bool:
        return await self.votes_table.add(warning_id, voter, choice, reaction_event_id, at)

    async def votes(self, warning_id: int) -> list[Vote]:
        return await self.votes_table.current(warning_id)

    async def vote_warning(self, reaction_event_id: str) -> tuple[int, str] | None:
        """(warning, voter) of a reaction that counted as a vote on a sector warning."""
        return await self.votes_table.ballot(reaction_event_id)

    async def withdraw_vote(self, reaction_event_id: str, at: datetime) -> None:
        await self.votes_table.withdraw(reaction_event_id, at)

    # --- webhooks and deliveries ----------------------------------------------------------

    async def add_webhook(
        self, partner_id: int, kind: str, subject: str, payload: dict[str, Any], now: datetime
    ) -> int:
        row = WebhookRow(
            partner_id=partner_id,
            kind=kind,
            subject=subject,
            payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return row.id

    async def due_webhooks(self, now: datetime, limit: int) -> list[DueWebhook]:
        rows = await self.session.execute(
            select(WebhookRow, PartnerRow)
            .join(PartnerRow, WebhookRow.partner_id == PartnerRow.id)
            .where(WebhookRow.next_attempt_at <= now)
            .order_by(WebhookRow.next_attempt_at, WebhookRow.id)
            .limit(limit)
        )
        return [
            DueWebhook(
                id=hook.id,
                kind=hook.kind,
                subject=hook.subject,
                payload=json.loads(hook.payload),
                attempts=hook.attempts,
                partner_id=partner.id,
                url=partner.webhook_url if partner.revoked_at is None else None,
                secret=partner.webhook_secret,
            )
            for hook, partner in rows.all()
        ]

    async def webhook_attempted(
        self,
        webhook_id: int,
        *,
        attempts: int,
        next_attempt_at: datetime | None,
        delivered_at: datetime | None = None,
        failed_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        await self.session.execute(
            update(WebhookRow)
            .where(WebhookRow.id == webhook_id)
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                delivered_at=delivered_at,
                failed_at=failed_at,
                last_error=error,
            )
        )

    async def add_delivery(self, warning_id: int, partner_id: int, webhook_id: int | None) -> None:
        self.session.add(
            DeliveryRow(warning_id=warning_id, partner_id=partner_id, webhook_id=webhook_id)
        )
        await self.session.flush()

    async def deliveries(self, warning_id: int) -> list[Delivery]:
        rows = await self.session.execute(
            select(DeliveryRow, PartnerRow, WebhookRow)
            .join(PartnerRow, DeliveryRow.partner_id == PartnerRow.id)
            .outerjoin(WebhookRow, DeliveryRow.webhook_id == WebhookRow.id)
            .where(DeliveryRow.warning_id == warning_id)
            .order_by(PartnerRow.name, PartnerRow.id)
        )
        return [
            Delivery(
                partner=partner_record(partner),
                webhook_attempts=hook.attempts if hook else 0,
                webhook_delivered_at=utc_or_none(hook.delivered_at) if hook else None,
                webhook_failed=bool(hook and hook.failed_at),
                last_error=hook.last_error if hook else None,
                fetched_at=utc_or_none(delivery.fetched_at),
            )
            for delivery, partner, hook in rows.all()
        ]

    async def warnings_for(self, partner_id: int, limit: int) -> list[SectorWarning]:
        """The approved warnings addressed to this partner, newest first."""
        rows = await self.session.scalars(
            select(WarningRow)
            .join(DeliveryRow, DeliveryRow.warning_id == WarningRow.id)
            .where(DeliveryRow.partner_id == partner_id)
            .order_by(WarningRow.id.desc())
            .limit(limit)
        )
        return [warning_record(r) for r in rows]

    async def mark_fetched(self, partner_id: int, warning_ids: Sequence[int], at: datetime) -> None:
        if not warning_ids:
            return
        await self.session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.partner_id == partner_id,
                DeliveryRow.warning_id.in_(list(warning_ids)),
                DeliveryRow.fetched_at.is_(None),
            )
            .values(fetched_at=at)
        )
