"""Queries for dossiers, their subjects, notes, assessments and timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.runtime import dialect_insert
from storage.search import matched_fields, matching, refresh_terms
from storage.tables import (
    AssessmentRow,
    DossierCounter,
    DossierRow,
    NoteRow,
    SubjectRow,
    TimelineRow,
)
from workflow.model import (
    Assessment,
    Basis,
    Dossier,
    DossierFilter,
    DossierKind,
    DossierStatus,
    Source,
    ThreatLevel,
    TimelineEntry,
)
from workflow.search import Field, Found, Hit


def utc_or_none(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything above storage is UTC-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def aware(value: datetime) -> datetime:
    result = utc_or_none(value)
    assert result is not None
    return result


def dossier_record(row: DossierRow, subjects: Sequence[str] = ()) -> Dossier:
    return Dossier(
        ref=row.ref,
        kind=DossierKind(row.kind),
        category=row.category,
        title=row.title,
        status=DossierStatus(row.status),
        basis=Basis(row.basis) if row.basis else None,
        external_ref=row.external_ref,
        lead=row.lead,
        starts_at=utc_or_none(row.starts_at),
        ends_at=utc_or_none(row.ends_at),
        room_id=row.room_id,
        created_by=row.created_by,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        level=ThreatLevel(row.level) if row.level else None,
        level_at=utc_or_none(row.level_at),
        subjects=tuple(subjects),
        purged_at=utc_or_none(row.purged_at),
        room_requested_at=utc_or_none(row.room_requested_at),
    )


async def next_sequence(session: AsyncSession, year: int) -> int:
    """Atomic increment of the year's counter; rolled back with the transaction, so the
    sequence has no gaps, and row-locked (PostgreSQL) or database-locked (SQLite)."""
    stmt = (
        dialect_insert(session)(DossierCounter)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": DossierCounter.last + 1})
        .returning(DossierCounter.last)
    )
    return int((await session.execute(stmt)).scalar_one())


async def insert(session: AsyncSession, fields: dict[str, Any], subjects: Sequence[str]) -> Dossier:
    row = DossierRow(**fields)
    session.add(row)
    await session.flush()
    for name in subjects:
        session.add(SubjectRow(dossier_id=row.id, name=name))
    await refresh_terms(session, row.id)
    return dossier_record(row, subjects)


async def _row(session: AsyncSession, ref: str) -> DossierRow | None:
    return (await session.scalars(select(DossierRow).where(DossierRow.ref == ref))).first()


async def get(session: AsyncSession, ref: str) -> Dossier | None:
    return (await get_many(session, [ref])).get(ref)


async def get_many(session: AsyncSession, refs: Sequence[str]) -> dict[str, Dossier]:
    """Dossiers with their subjects, in two queries however many are asked for."""
    rows = list(await session.scalars(select(DossierRow).where(DossierRow.ref.in_(set(refs)))))
    names: dict[int, list[str]] = {row.id: [] for row in rows}
    subjects = await session.execute(
        select(SubjectRow.dossier_id, SubjectRow.name)
        .where(SubjectRow.dossier_id.in_(names))
        .order_by(SubjectRow.id)
    )
    for dossier_id, name in subjects:
        names[dossier_id].append(name)
    return {row.ref: dossier_record(row, names[row.id]) for row in rows}


async def latest_assessments(session: AsyncSession, refs: Sequence[str]) -> dict[str, Assessment]:
    """The newest assessment of each dossier that has one, in one query."""
    newest = (
        select(func.max(AssessmentRow.id))
        .join(DossierRow, AssessmentRow.dossier_id == DossierRow.id)
        .where(DossierRow.ref.in_(set(refs)))
        .group_by(AssessmentRow.dossier_id)
    )
    rows = await session.execute(
        select(DossierRow.ref, AssessmentRow)
        .join(DossierRow, AssessmentRow.dossier_id == DossierRow.id)
        .where(AssessmentRow.id.in_(newest))
    )
    return {ref: assessment_record(ref, row) for ref, row in rows}


async def ref_for_room(session: AsyncSession, room_id: str) -> str | None:
    return (
        await session.scalars(select(DossierRow.ref).where(DossierRow.room_id == room_id))
    ).first()


async def rooms(session: AsyncSession) -> dict[str, str]:
    """Every dossier room, room ID -> dossier ID: the rooms the membership guard watches."""
    rows = await session.execute(
        select(DossierRow.room_id, DossierRow.ref).where(DossierRow.room_id.is_not(None))
    )
    return {room_id: ref for room_id, ref in rows.all() if room_id}


# The dossier's own columns that `!dossier find` searches.
_SEARCHED = frozenset({"title", "category", "external_ref"})


async def update_fields(session: AsyncSession, ref: str, fields: dict[str, Any]) -> None:
    await session.execute(update(DossierRow).where(DossierRow.ref == ref).values(**fields))
    if _SEARCHED & set(fields):
        await refresh_terms(session, await _id(session, ref))


async def replace_subjects(session: AsyncSession, ref: str, subjects: Sequence[str]) -> None:
    row = await _row(session, ref)
    assert row is not None
    for old in await session.scalars(select(SubjectRow).where(SubjectRow.dossier_id == row.id)):
        await session.delete(old)
    for name in subjects:
        session.add(SubjectRow(dossier_id=row.id, name=name))
    await refresh_terms(session, row.id)


async def _id(session: AsyncSession, ref: str) -> int:
    return int(
        (await session.execute(select(DossierRow.id).where(DossierRow.ref == ref))).scalar_one()
    )


async def add_timeline(
    session: AsyncSession,
    ref: str,
    *,
    at: datetime,
    actor: str,
    kind: str,
    text: str,
    event_id: str,
) -> None:
    """Every timeline entry is also activity: it moves the dossier up in `!dossier list`."""
    dossier_id = await _id(session, ref)
    session.add(
        TimelineRow(
            dossier_id=dossier_id, at=at, actor=actor, kind=kind, text=text, event_id=event_id
        )
    )
    await session.execute(
        update(DossierRow).where(DossierRow.id == dossier_id).values(updated_at=at)
    )


async def add_note(
    session: AsyncSession, ref: str, *, author: str, text: str, at: datetime, event_id: str
) -> None:
    dossier_id = await _id(session, ref)
    session.add(
        NoteRow(dossier_id=dossier_id, author=author, text=text, created_at=at, event_id=event_id)
    )
    await refresh_terms(session, dossier_id)


async def add_assessment(session: AsyncSession, assessment: Assessment, event_id: str) -> None:
    dossier_id = await _id(session, assessment.dossier_ref)
    session.add(
        AssessmentRow(
            dossier_id=dossier_id,
            level=int(assessment.level),
            source=assessment.source.value,
            summary=assessment.summary,
            external_ref=assessment.external_ref,
            review_at=assessment.review_at,
            assessed_by=assessment.assessed_by,
            created_at=assessment.created_at,
            event_id=event_id,
        )
    )
    await session.execute(
        update(DossierRow)
        .where(DossierRow.id == dossier_id)
        .values(level=int(assessment.level), level_at=assessment.created_at)
    )


def assessment_record(ref: str, row: AssessmentRow) -> Assessment:
    return Assessment(
        dossier_ref=ref,
        level=ThreatLevel(row.level),
        source=Source(row.source),
        summary=row.summary,
        external_ref=row.external_ref,
        review_at=aware(row.review_at),
        assessed_by=row.assessed_by,
        created_at=aware(row.created_at),
    )


async def assessments(
    session: AsyncSession, ref: str, limit: int | None = None
) -> list[Assessment]:
    """Newest first."""
    query = (
        select(AssessmentRow)
        .where(AssessmentRow.dossier_id == await _id(session, ref))
        .order_by(AssessmentRow.id.desc())
        .limit(limit)
    )
    return [assessment_record(ref, row) for row in await session.scalars(query)]


async def timeline(
    session: AsyncSession, ref: str, limit: int | None = None
) -> list[TimelineEntry]:
    """Oldest first; with a limit, the most recent `limit` entries."""
    query = (
        select(TimelineRow)
        .where(TimelineRow.dossier_id == await _id(session, ref))
        .order_by(TimelineRow.id.desc())
        .limit(limit)
    )
    rows = list(await session.scalars(query))
    rows.reverse()
    return [TimelineEntry(aware(r.at), r.actor, r.kind, r.text) for r in rows]


async def notes(session: AsyncSession, ref: str) -> list[tuple[datetime, str, str]]:
    query = (
        select(NoteRow.created_at, NoteRow.author, NoteRow.text)
        .where(NoteRow.dossier_id == await _id(session, ref))
        .order_by(NoteRow.id)
    )
    return [(aware(at), author, text) for at, author, text in (await session.execute(query)).all()]


async def listing(
    session: AsyncSession, wanted: DossierFilter, offset: int, limit: int
) -> tuple[list[Dossier], int]:
    """A page of dossiers, newest activity first, and how many match in all."""
    conditions = []
    if wanted.status is not None:
        conditions.append(DossierRow.status == wanted.status.value)
    if wanted.kind is not None:
        conditions.append(DossierRow.kind == wanted.kind.value)
    if wanted.level_min is not None:
        conditions.append(DossierRow.level >= wanted.level_min)
    if wanted.lead is not None:
        conditions.append(DossierRow.lead == wanted.lead)
    total = await session.scalar(select(func.count()).select_from(DossierRow).where(*conditions))
    rows = await session.scalars(
        select(DossierRow)
        .where(*conditions)
        .order_by(DossierRow.updated_at.desc(), DossierRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [dossier_record(row) for row in rows], int(total or 0)


async def find(session: AsyncSession, words: Sequence[str], limit: int) -> Found:
    """The dossiers with a term starting with each word (workflow/search.py), newest
    activity first: index range scans, whatever the number of dossiers."""
    if not words:
        return Found([], 0)
    ids = matching(words)
    rows = (
        await session.execute(
            # The count is over every match, taken in the same pass as the first page.
            select(DossierRow.id, DossierRow.ref, func.count().over().label("total"))
            .where(DossierRow.id.in_(select(ids.c.dossier_id)))
            .order_by(DossierRow.updated_at.desc(), DossierRow.id.desc())
            .limit(limit)
        )
    ).all()
    if not rows:
        return Found([], 0)
    found = await get_many(session, [row.ref for row in rows])
    fields = await matched_fields(session, [row.id for row in rows], words)
    order = list(Field)
    hits = [Hit(found[r.ref], tuple(sorted(fields[r.id], key=order.index))) for r in rows]
    return Found(hits, int(rows[0].total))
