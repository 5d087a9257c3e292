"""The search index of `!dossier find` (table dossier_terms) and the query on it.

`refresh_terms` is the one way the index changes: every write to a field that search reads
(title, category, reference, persons, notes) calls it in the same transaction, and so does
a purge, which empties it, since the terms are personal data too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Subquery,
    and_,
    delete,
    insert,
    intersect,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import DossierRow, DossierTermRow, NoteRow, PersonRow
from workflow.search import Field, after_prefix, dossier_terms

_BATCH = 5000


async def refresh_terms(session: AsyncSession, dossier_id: int) -> None:
    """Rebuilds one dossier's terms from what is stored now; a purged dossier keeps none.

    Call it after any write to a searched field, in the same transaction (the persons a
    dossier covers included, wherever they are stored)."""
    await session.execute(delete(DossierTermRow).where(DossierTermRow.dossier_id == dossier_id))
    row = (
        await session.execute(
            select(
                DossierRow.ref,
                DossierRow.title,
                DossierRow.category,
                DossierRow.external_ref,
                DossierRow.purged_at,
            ).where(DossierRow.id == dossier_id)
        )
    ).one()
    if row.purged_at is not None:
        return
    # The persons the dossier covers now: a removed person no longer finds it.
    subjects = await session.scalars(
        select(PersonRow.name).where(
            PersonRow.dossier_id == dossier_id, PersonRow.removed_at.is_(None)
        )
    )
    notes = await session.scalars(select(NoteRow.text).where(NoteRow.dossier_id == dossier_id))
    found = dossier_terms(row.ref, row.title, row.category, row.external_ref, subjects, notes)
    if found:
        await session.execute(
            insert(DossierTermRow),
            [{"dossier_id": dossier_id, "field": f.value, "term": t} for f, t in found],
        )


def fill_all(connection: Connection) -> int:
    """Indexes every dossier not purged, in bulk: for the migration that creates the index
    and for data loaded straight into the tables. Returns how many terms it wrote."""
    connection.execute(delete(DossierTermRow))
    subjects: dict[int, list[str]] = defaultdict(list)
    covered = select(PersonRow.dossier_id, PersonRow.name).where(PersonRow.removed_at.is_(None))
    for dossier_id, name in connection.execute(covered):
        subjects[dossier_id].append(name)
    notes: dict[int, list[str]] = defaultdict(list)
    for dossier_id, text in connection.execute(select(NoteRow.dossier_id, NoteRow.text)):
        notes[dossier_id].append(text)
    dossiers = connection.execute(
        select(
            DossierRow.id,
            DossierRow.ref,
            DossierRow.title,
            DossierRow.category,
            DossierRow.external_ref,
        ).where(DossierRow.purged_at.is_(None))
    )
    rows = [
        {"dossier_id": d.id, "field": field.value, "term": term}
        for d in dossiers
        for field, term in dossier_terms(
            d.ref, d.title, d.category, d.external_ref, subjects[d.id], notes[d.id]
        )
    ]
    for start in range(0, len(rows), _BATCH):
        connection.execute(insert(DossierTermRow), rows[start : start + _BATCH])
    return len(rows)


def _matching(word: str) -> Select[int]:
    """The dossiers with a term that starts with `word`: one range scan of the term index."""
    return select(DossierTermRow.dossier_id).where(_starts_with(word))


def _starts_with(word: str) -> ColumnElement[bool]:
    return and_(DossierTermRow.term >= word, DossierTermRow.term < after_prefix(word))


def matching(words: Sequence[str]) -> Subquery:
    """The IDs (column `dossier_id`) of the dossiers with a term starting with each word,
    for an `IN`: a dossier may be named more than once."""
    each = [_matching(word) for word in words]
    return (intersect(*each) if len(each) > 1 else each[0]).subquery()


async def matched_fields(
    session: AsyncSession, dossier_ids: Sequence[int], words: Sequence[str]
) -> dict[int, set[Field]]:
    """For each of these dossiers, the fields in which some word matched."""
    fields: dict[int, set[Field]] = defaultdict(set)
    rows = await session.execute(
        select(DossierTermRow.dossier_id, DossierTermRow.field)
        .where(
            DossierTermRow.dossier_id.in_(dossier_ids),
            or_(*(_starts_with(word) for word in words)),
        )
        .distinct()
    )
    for dossier_id, field in rows:
        fields[dossier_id].add(Field(field))
    return fields
