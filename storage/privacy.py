"""Queries behind retention and the access trail: which closed dossiers are old enough, what
personal data each holds, the purge that blanks it, and a dossier's audit entries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.dossiers import aware
from storage.reminders import ReminderStore
from storage.search import refresh_terms
from storage.tables import (
    AssessmentRow,
    DossierRow,
    MeasureRow,
    NoteRow,
    PersonRow,
    ProposalRow,
    TimelineRow,
)
from workflow.model import DossierKind, DossierStatus
from workflow.privacy import LIVE_MEASURES, ClosedDossier, PersonalData


def _closed_dossiers(closed_by: datetime | None = None, ref: str | None = None) -> Select[Any]:
    """Closed, not yet purged dossiers with the time of their last closing (the status change
    on the timeline; the last activity if none is recorded) and how many live measures each
    has."""
    closed_at = (
        select(func.max(TimelineRow.at))
        .where(TimelineRow.dossier_id == DossierRow.id, TimelineRow.kind == "closed")
        .scalar_subquery()
    )
    live = (
        select(func.count())
        .select_from(MeasureRow)
        .where(
            MeasureRow.dossier_id == DossierRow.id,
            MeasureRow.state.in_([s.value for s in LIVE_MEASURES]),
        )
        .scalar_subquery()
    )
    when = func.coalesce(closed_at, DossierRow.updated_at)
    query = (
        select(DossierRow.ref, DossierRow.kind, when.label("closed_at"), live.label("live"))
        .where(DossierRow.status == DossierStatus.CLOSED.value, DossierRow.purged_at.is_(None))
        .order_by(DossierRow.id)
    )
    if closed_by is not None:
        query = query.where(when <= closed_by)
    if ref is not None:
        query = query.where(DossierRow.ref == ref)
    return query


def _closed_record(row: Any) -> ClosedDossier:
    return ClosedDossier(row.ref, DossierKind(row.kind), aware(row.closed_at), int(row.live))


def _scrub(changes: str, placeholder: str) -> str:
    """A proposal's changes keep their dates (when a measure was to end or be reviewed);
    anything else, such as the text of a limitation, is blanked."""

    def keep(value: Any) -> Any:
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            return placeholder
        return value

    return json.dumps({key: keep(value) for key, value in json.loads(changes).items()})


class PrivacyStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def closed_before(self, cutoff: datetime) -> list[ClosedDossier]:
        rows = await self.session.execute(_closed_dossiers(closed_by=cutoff))
        return [_closed_record(row) for row in rows.all()]

    async def closed(self, ref: str) -> ClosedDossier | None:
        row = (await self.session.execute(_closed_dossiers(ref=ref))).first()
        return _closed_record(row) if row else None

    async def _ids(self, ref: str) -> tuple[int, list[int], list[int], list[str]]:
        """The dossier's id, its measures' and proposals' ids, and what its audit entries name
        as their target: itself, its measures and its proposals."""
        dossier_id = int(
            (
                await self.session.execute(select(DossierRow.id).where(DossierRow.ref == ref))
            ).scalar_one()
        )
        measures = list(
            await self.session.scalars(
                select(MeasureRow.id).where(MeasureRow.dossier_id == dossier_id)
            )
        )
        proposals = list(
            await self.session.scalars(
                select(ProposalRow.id).where(ProposalRow.measure_id.in_(measures))
            )
        )
        targets = [ref, *(f"M-{m}" for m in measures), *(f"P-{p}" for p in proposals)]
        return dossier_id, measures, proposals, targets

    async def _count(self, column: Any, *where: Any) -> int:
        return int(await self.session.scalar(select(func.count(column)).where(*where)) or 0)

    async def personal_data(self, ref: str) -> PersonalData:
        dossier_id, measures, proposals, targets = await self._ids(ref)
        return PersonalData(
            persons=await self._count(PersonRow.id, PersonRow.dossier_id == dossier_id),
            notes=await self._count(NoteRow.id, NoteRow.dossier_id == dossier_id),
            assessments=await self._count(AssessmentRow.id, AssessmentRow.dossier_id == dossier_id),
            timeline=await self._count(TimelineRow.id, TimelineRow.dossier_id == dossier_id),
            measures=len(measures),
            proposals=len(proposals),
            audit_entries=len(await audit.seqs_for(self.session, targets)),
            reminders=await ReminderStore(self.session).count_for_dossier(ref),
        )

    async def purge(
        self, ref: str, now: datetime, placeholder: str
    ) -> tuple[PersonalData, list[int]]:
        """Blanks the dossier's personal data, keeping the rows that others refer to, and
        tombstones its audit details. Returns what held personal data, and the audit seqs."""
        removed = await self.personal_data(ref)
        dossier_id, measures, proposals, targets = await self._ids(ref)
        session = self.session
        await session.execute(
            update(DossierRow)
            .where(DossierRow.id == dossier_id)
            .values(title=placeholder, external_ref=None, purged_at=now)
        )
        # Names go, rows stay: measures and assessments name them, and the yearly count of
        # persons covered must not change when an old dossier is purged.
        await session.execute(
            update(PersonRow).where(PersonRow.dossier_id == dossier_id).values(name=placeholder)
        )
        await session.execute(delete(NoteRow).where(NoteRow.dossier_id == dossier_id))
        await session.execute(
            update(AssessmentRow)
            .where(AssessmentRow.dossier_id == dossier_id)
            .values(summary=placeholder, external_ref=None)
        )
        await session.execute(
            update(TimelineRow).where(TimelineRow.dossier_id == dossier_id).values(text=placeholder)
        )
        if measures:
            await session.execute(
                update(MeasureRow)
                .where(MeasureRow.id.in_(measures))
                .values(details=placeholder, executor=None)
            )
        for proposal in await session.scalars(
            select(ProposalRow).where(ProposalRow.id.in_(proposals))
        ):
            proposal.reason = placeholder
            proposal.changes = _scrub(proposal.changes, placeholder)
            if proposal.rationale is not None:
                proposal.rationale = placeholder
        await ReminderStore(session).delete_for_dossier(ref)
        await refresh_terms(session, dossier_id)  # a purged dossier keeps no search terms
        seqs = await audit.seqs_for(session, targets)
        await audit.tombstone(session, seqs)
        await session.flush()
        return removed, seqs

    async def trail(
        self, ref: str, offset: int, limit: int
    ) -> tuple[list[audit.AuditRecordRow], int]:
        targets = (await self._ids(ref))[3]
        return await audit.page_for(self.session, targets, ref, offset, limit)

    async def readers(self, ref: str) -> list[tuple[str, int, datetime]]:
        return await audit.readers_of(self.session, ref)

    async def index_read(self, seq: int, refs: list[str]) -> None:
        await audit.index_read(self.session, seq, refs)
