"""Meeting occurrences skipped or moved, and the bulk reads the agendas are built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.dossiers import (
    assessment_record,
    aware,
    dossier_record,
    persons_of,
    utc_or_none,
)
from storage.measures import measure_record
from storage.tables import AssessmentRow, DossierRow, MeasureRow, MeetingChangeRow, TimelineRow
from workflow.agenda import AssessmentChange, Change, MeasureLine
from workflow.meetings import OccurrenceChange
from workflow.model import (
    Dossier,
    DossierStatus,
    Measure,
    MeasureState,
    MeasureType,
    ThreatLevel,
)


def _utc_of(moment: datetime) -> datetime:
    """Every stored time is UTC: SQLite keeps no offset, so comparisons need one zone."""
    return moment.astimezone(UTC)


def _change(row: MeetingChangeRow) -> OccurrenceChange:
    return OccurrenceChange(
        meeting=row.meeting,
        occurrence=aware(row.occurrence),
        action=row.action,
        moved_to=utc_or_none(row.moved_to),
        reason=row.reason,
        changed_by=row.changed_by,
        changed_at=aware(row.changed_at),
    )


class MeetingStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def changes(self, meeting: str | None = None) -> list[OccurrenceChange]:
        query = select(MeetingChangeRow).order_by(MeetingChangeRow.occurrence)
        if meeting is not None:
            query = query.where(MeetingChangeRow.meeting == meeting)
        return [_change(row) for row in await self.session.scalars(query)]

    async def set_change(self, change: OccurrenceChange) -> None:
        """A skip or move of one occurrence; a later change of the same one replaces it."""
        occurrence = _utc_of(change.occurrence)
        row = (
            await self.session.scalars(
                select(MeetingChangeRow).where(
                    MeetingChangeRow.meeting == change.meeting,
                    MeetingChangeRow.occurrence == occurrence,
                )
            )
        ).first()
        if row is None:
            row = MeetingChangeRow(meeting=change.meeting, occurrence=occurrence)
            self.session.add(row)
        row.action = change.action
        row.moved_to = _utc_of(change.moved_to) if change.moved_to else None
        row.reason = change.reason
        row.changed_by = change.changed_by
        row.changed_at = change.changed_at
        await self.session.flush()


_TYPES = {t.value: t for t in MeasureType}
_STATES = {s.value: s for s in MeasureState}


def _fast_measure(row: Any, dossier_ref: str) -> Measure:
    """storage.measures.measure_record for plain rows, with table lookups instead of enum calls:
    the monthly review converts thousands."""
    return Measure(
        id=row.id,
        dossier_ref=dossier_ref,
        type=_TYPES[row.type],
        details=row.details,
        executor=row.executor,
        starts_at=utc_or_none(row.starts_at),
        ends_at=utc_or_none(row.ends_at),
        review_at=utc_or_none(row.review_at),
        state=_STATES[row.state],
        created_by=row.created_by,
        created_at=aware(row.created_at),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=utc_or_none(row.acknowledged_at),
        person_id=row.person_id,
    )


IN_FORCE = (MeasureState.ACTIVE.value, MeasureState.PROVISIONAL.value)
UNDECIDED = (*IN_FORCE, MeasureState.PROPOSED.value)


class AgendaStore:
    """A handful of set-based queries per agenda, whatever the number of measures."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _latest_reviews(self, dossier_ids: list[int]) -> dict[int, datetime]:
        """The review date of each dossier's latest assessment."""
        if not dossier_ids:
            return {}
        latest = (
            select(func.max(AssessmentRow.id))
            .where(AssessmentRow.dossier_id.in_(dossier_ids))
            .group_by(AssessmentRow.dossier_id)
        )
        rows = await self.session.execute(
            select(AssessmentRow.dossier_id, AssessmentRow.review_at).where(
                AssessmentRow.id.in_(latest)
            )
        )
        return {dossier_id: aware(review) for dossier_id, review in rows.all()}

    async def measures(self, states: tuple[str, ...] = IN_FORCE) -> list[MeasureLine]:
        """Measures in the given states with their dossier, by dossier kind, ref and id.

        Plain rows rather than ORM objects: the monthly review reads thousands of them."""
        wanted = MeasureRow.state.in_(states)
        dossier_rows = (
            await self.session.execute(
                select(DossierRow.__table__).where(
                    DossierRow.id.in_(select(MeasureRow.dossier_id).where(wanted))
                )
            )
        ).all()
        persons = await persons_of(self.session, {row.id: row.ref for row in dossier_rows})
        dossiers = {
            row.id: dossier_record(cast(DossierRow, row), persons[row.id]) for row in dossier_rows
        }
        reviews = await self._latest_reviews(sorted(dossiers))
        measure_rows = (
            await self.session.execute(select(MeasureRow.__table__).where(wanted))
        ).all()
        lines = [
            MeasureLine(
                _fast_measure(row, dossiers[row.dossier_id].ref),
                dossiers[row.dossier_id],
                reviews.get(row.dossier_id),
            )
            for row in measure_rows
        ]
        lines.sort(key=lambda line: (line.dossier.kind, line.dossier.ref, line.measure.id))
        return lines

    async def dossiers_in_period(self, start: datetime, end: datetime) -> list[Dossier]:
        """Dossiers whose period [starts_at, ends_at] touches [start, end]."""
        first = func.coalesce(DossierRow.starts_at, DossierRow.ends_at)
        last = func.coalesce(DossierRow.ends_at, DossierRow.starts_at)
        rows = await self.session.scalars(
            select(DossierRow)
            .where(
                or_(DossierRow.starts_at.is_not(None), DossierRow.ends_at.is_not(None)),
                first <= _utc_of(end),
                last >= _utc_of(start),
            )
            .order_by(first, DossierRow.ref)
        )
        return [dossier_record(row) for row in rows]

    async def measures_of(self, refs: list[str]) -> list[Measure]:
        if not refs:
            return []
        rows = await self.session.execute(
            select(MeasureRow, DossierRow.ref)
            .join(DossierRow, MeasureRow.dossier_id == DossierRow.id)
            .where(DossierRow.ref.in_(refs), MeasureRow.state.in_(UNDECIDED))
            .order_by(MeasureRow.id)
        )
        return [measure_record(m, ref) for m, ref in rows.all()]

    async def assessments_between(self, start: datetime, end: datetime) -> list[AssessmentChange]:
        """Assessments made in [start, end), each with the level it replaced (if any)."""
        earlier = aliased(AssessmentRow)
        previous = (
            select(earlier.level)
            .where(earlier.dossier_id == AssessmentRow.dossier_id, earlier.id < AssessmentRow.id)
            .order_by(earlier.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(AssessmentRow, DossierRow.ref, DossierRow.title, previous)
            .join(DossierRow, AssessmentRow.dossier_id == DossierRow.id)
            .where(
                AssessmentRow.created_at >= _utc_of(start), AssessmentRow.created_at < _utc_of(end)
            )
            .order_by(AssessmentRow.id)
        )
        return [
            AssessmentChange(
                assessment_record(ref, row),
                title,
                ThreatLevel(before) if before else None,
            )
            for row, ref, title, before in rows.all()
        ]

    async def reviews_due(self, until: datetime) -> list[tuple[Dossier, datetime]]:
        """Open dossiers whose latest assessment is due for review by `until`."""
        # A derived table, not `id IN (subquery)`: SQLite would otherwise rescan the
        # assessments for each candidate row (seconds at 50,000 assessments).
        latest = (
            select(func.max(AssessmentRow.id).label("id"))
            .group_by(AssessmentRow.dossier_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(DossierRow, AssessmentRow.review_at)
            .join(AssessmentRow, AssessmentRow.dossier_id == DossierRow.id)
            .join(latest, latest.c.id == AssessmentRow.id)
            .where(
                AssessmentRow.review_at <= _utc_of(until),
                DossierRow.status == DossierStatus.OPEN.value,
            )
            .order_by(AssessmentRow.review_at, DossierRow.ref)
        )
        return [(dossier_record(d), aware(review)) for d, review in rows.all()]

    async def changes_since(self, since: datetime, limit: int = 1000) -> list[Change]:
        rows = await self.session.execute(
            select(TimelineRow, DossierRow.ref)
            .join(DossierRow, TimelineRow.dossier_id == DossierRow.id)
            .where(TimelineRow.at >= _utc_of(since))
            .order_by(TimelineRow.at, TimelineRow.id)
            .limit(limit)
        )
        return [
            Change(aware(row.at), ref, row.actor, row.kind, row.text) for row, ref in rows.all()
        ]
