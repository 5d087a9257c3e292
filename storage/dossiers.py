"""Queries for dossiers, their persons, notes, assessments and timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, distinct, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.runtime import dialect_insert
from storage.search import matched_fields, matching, refresh_terms
from storage.tables import (
    AssessmentRow,
    DossierCounter,
    DossierRow,
    MeasureRow,
    NoteRow,
    PersonRow,
    TimelineRow,
)
from workflow.model import (
    Assessment,
    Basis,
    Dossier,
    DossierFilter,
    DossierKind,
    DossierStatus,
    Person,
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


def dossier_record(row: DossierRow, persons: Sequence[Person] = ()) -> Dossier:
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
        persons=tuple(persons),
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


def person_record(row: PersonRow, dossier_ref: str) -> Person:
    return Person(row.id, dossier_ref, row.number, row.name, utc_or_none(row.removed_at))


async def insert(session: AsyncSession, fields: dict[str, Any], names: Sequence[str]) -> Dossier:
    """The dossier and one person per name, numbered 1, 2, ... in the order given."""
    row = DossierRow(**fields)
    session.add(row)
    await session.flush()
    people = [
        PersonRow(dossier_id=row.id, number=n, name=name, added_at=row.created_at)
        for n, name in enumerate(names, start=1)
    ]
    session.add_all(people)
    await session.flush()
    await refresh_terms(session, row.id)
    return dossier_record(row, [person_record(p, row.ref) for p in people])


async def _row(session: AsyncSession, ref: str) -> DossierRow | None:
    return (await session.scalars(select(DossierRow).where(DossierRow.ref == ref))).first()


async def get(session: AsyncSession, ref: str) -> Dossier | None:
    return (await get_many(session, [ref])).get(ref)


async def get_many(session: AsyncSession, refs: Sequence[str]) -> dict[str, Dossier]:
    """Dossiers with their persons, in two queries however many are asked for."""
    rows = list(await session.scalars(select(DossierRow).where(DossierRow.ref.in_(set(refs)))))
    _known_ids(session).update((row.ref, row.id) for row in rows)
    persons = await persons_of(session, {row.id: row.ref for row in rows})
    return {row.ref: dossier_record(row, persons[row.id]) for row in rows}


async def persons_of(session: AsyncSession, refs: dict[int, str]) -> dict[int, list[Person]]:
    """The persons of each dossier (id -> ref), by number, in one query."""
    persons: dict[int, list[Person]] = {dossier_id: [] for dossier_id in refs}
    for person in await session.scalars(
        select(PersonRow)
        .where(PersonRow.dossier_id.in_(refs))
        .order_by(PersonRow.dossier_id, PersonRow.number)
    ):
        persons[person.dossier_id].append(person_record(person, refs[person.dossier_id]))
    return persons


async def add_person(session: AsyncSession, ref: str, name: str, at: datetime) -> Person:
    """The next number of the dossier, counting removed persons too: never reused. Two
    racing adds cannot share a number: the unique index refuses the second."""
    dossier_id = await _id(session, ref)
    last = await session.scalar(
        select(func.max(PersonRow.number)).where(PersonRow.dossier_id == dossier_id)
    )
    row = PersonRow(dossier_id=dossier_id, number=int(last or 0) + 1, name=name, added_at=at)
    session.add(row)
    await session.flush()
    await refresh_terms(session, dossier_id)
    return person_record(row, ref)


async def rename_person(session: AsyncSession, person_id: int, name: str) -> None:
    dossier_id = await session.scalar(
        update(PersonRow)
        .where(PersonRow.id == person_id)
        .values(name=name)
        .returning(PersonRow.dossier_id)
    )
    assert dossier_id is not None
    await refresh_terms(session, int(dossier_id))


async def remove_person(session: AsyncSession, person_id: int, at: datetime) -> None:
    """Marks the person removed and recomputes the dossier's level without them."""
    dossier_id = await session.scalar(
        update(PersonRow)
        .where(PersonRow.id == person_id)
        .values(removed_at=at)
        .returning(PersonRow.dossier_id)
    )
    assert dossier_id is not None
    await _refresh_level(session, int(dossier_id))
    await refresh_terms(session, int(dossier_id))


async def coverage(session: AsyncSession, year: int) -> tuple[int, int]:
    """(dossiers opened in `year`, distinct persons they cover). The year is the one in the
    dossier's ID (its opening year, local time). A person removed from a dossier counts if a
    measure of their own protected them; otherwise they were entered but never covered."""
    opened = DossierRow.ref.like(f"D-{year}-%")
    dossiers = await session.scalar(select(func.count()).select_from(DossierRow).where(opened))
    protected = exists().where(MeasureRow.person_id == PersonRow.id)
    persons = await session.scalar(
        select(func.count(PersonRow.id))
        .join(DossierRow, PersonRow.dossier_id == DossierRow.id)
        .where(opened, or_(PersonRow.removed_at.is_(None), protected))
    )
    return int(dossiers or 0), int(persons or 0)


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


# Key of `session.info`: dossier ref -> id, as this transaction has seen them. A reference
# never moves to another row, so a view that reads five tables of one dossier looks it up once.
_IDS = "aegis.dossier_ids"


def _known_ids(session: AsyncSession) -> dict[str, int]:
    known: dict[str, int] = session.info.setdefault(_IDS, {})
    return known


async def _id(session: AsyncSession, ref: str) -> int:
    known = _known_ids(session)
    if ref not in known:
        known[ref] = int(
            (await session.execute(select(DossierRow.id).where(DossierRow.ref == ref))).scalar_one()
        )
    return known[ref]


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
            person_id=assessment.person_id,
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
    await session.flush()
    await _refresh_level(session, dossier_id)


def _latest_per_scope(dossier_id: int) -> Select[int]:
    """The newest assessment of the whole dossier and of each person still covered."""
    return (
        select(func.max(AssessmentRow.id))
        .outerjoin(PersonRow, AssessmentRow.person_id == PersonRow.id)
        .where(AssessmentRow.dossier_id == dossier_id, PersonRow.removed_at.is_(None))
        .group_by(AssessmentRow.person_id)
    )


async def _refresh_level(session: AsyncSession, dossier_id: int) -> None:
    """The dossier's level is the highest current one, of the dossier as a whole or of any
    person it covers: `!dossier list level>=3` must find a family with one person at 3.
    Without person assessments this is the latest assessment's level, as it always was."""
    rows = (
        await session.execute(
            select(AssessmentRow.level, AssessmentRow.created_at).where(
                AssessmentRow.id.in_(_latest_per_scope(dossier_id))
            )
        )
    ).all()
    top = max(rows, key=lambda row: (row.level, aware(row.created_at)), default=None)
    await session.execute(
        update(DossierRow)
        .where(DossierRow.id == dossier_id)
        .values(level=top.level if top else None, level_at=top.created_at if top else None)
    )


async def latest_assessment(
    session: AsyncSession, ref: str, person_id: int | None
) -> Assessment | None:
    """The newest assessment of the whole dossier (None) or of one person."""
    row = (
        await session.scalars(
            select(AssessmentRow)
            .where(
                AssessmentRow.dossier_id == await _id(session, ref),
                AssessmentRow.person_id.is_(None)
                if person_id is None
                else AssessmentRow.person_id == person_id,
            )
            .order_by(AssessmentRow.id.desc())
            .limit(1)
        )
    ).first()
    return assessment_record(ref, row) if row else None


async def current_assessments(session: AsyncSession, ref: str) -> list[Assessment]:
    """The newest assessment of the whole dossier and of each person it covers."""
    rows = await session.scalars(
        select(AssessmentRow)
        .where(AssessmentRow.id.in_(_latest_per_scope(await _id(session, ref))))
        .order_by(AssessmentRow.id)
    )
    return [assessment_record(ref, row) for row in rows]


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
        person_id=row.person_id,
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
    if wanted.involving is not None:
        user = wanted.involving
        conditions.append(or_(DossierRow.created_by == user, DossierRow.lead == user))
    total = await session.scalar(select(func.count()).select_from(DossierRow).where(*conditions))
    rows = await session.scalars(
        select(DossierRow)
        .where(*conditions)
        .order_by(DossierRow.updated_at.desc(), DossierRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [dossier_record(row) for row in rows], int(total or 0)


# From how many matches `find` walks the dossiers by activity rather than sorting the matches.
WALK_FROM = 500


async def find(session: AsyncSession, words: Sequence[str], limit: int) -> Found:
    """The dossiers with a term starting with each word (workflow/search.py), newest
    activity first: index range scans, whatever the number of dossiers.

    Two passes over the matches' IDs, each cheap: the count reads the term index alone, and
    for a common word the page walks the dossiers newest first (ix_dossiers_recent) until
    `limit` of them match. One query with a window count sorted every match instead, and
    cost the most where the word is common."""
    if not words:
        return Found([], 0)
    ids = matching(words)
    total = int(await session.scalar(select(func.count(distinct(ids.c.dossier_id)))) or 0)
    if not total:
        return Found([], 0)
    # Many matches: walk the dossiers newest first and stop at the page (`id + 0` keeps the
    # match list a filter on that walk). Few: look each up by its key and sort them, which
    # is cheaper than walking past thousands of dossiers that do not match.
    matched = select(ids.c.dossier_id)
    where = (DossierRow.id + 0).in_(matched) if total > WALK_FROM else DossierRow.id.in_(matched)
    rows = (
        await session.execute(
            select(DossierRow.id, DossierRow.ref)
            .where(where)
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
    return Found(hits, total)
