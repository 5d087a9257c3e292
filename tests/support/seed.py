"""Bulk data at the volume the issue names (NCCN handles more than 1,500 person dossiers a
year): written straight into the tables, since going through chat would take hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from storage.db import Database
from storage.search import fill_all
from storage.tables import AssessmentRow, DossierCounter, DossierRow, NoteRow, PersonRow
from workflow.model import CATEGORIES, DossierKind

WORDS = [
    "visit",
    "summit",
    "embassy",
    "minister",
    "family",
    "journalist",
    "residence",
    "convoy",
    "forum",
    "council",
]
BASE = datetime(2026, 1, 1, tzinfo=UTC)


async def seed_dossiers(db: Database, dossiers: int, assessments: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    kinds = list(DossierKind)
    rows = []
    for n in range(1, dossiers + 1):
        kind = rng.choice(kinds)
        at = BASE + timedelta(minutes=37 * n)
        rows.append(
            {
                "id": n,
                "ref": f"D-2025-{n:04d}",
                "kind": kind.value,
                "category": rng.choice(CATEGORIES[kind]),
                "title": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {n}",
                "status": "open" if rng.random() < 0.7 else "closed",
                "external_ref": f"EXT/{n}",
                "lead": f"@lead{n % 40}:aegis.test",
                "created_by": "@seed:aegis.test",
                "created_at": at,
                "updated_at": at,
                "level": None,
            }
        )
    # One to three persons per person dossier, as a family would be.
    person_rows: list[dict[str, object]] = []
    persons_of: dict[int, list[int]] = {}
    for dossier_id, row in enumerate(rows, start=1):
        if row["kind"] != DossierKind.PERSON.value:
            continue
        for number in range(1, rng.randint(1, 3) + 1):
            person_id = len(person_rows) + 1
            persons_of.setdefault(dossier_id, []).append(person_id)
            person_rows.append(
                {
                    "id": person_id,
                    "dossier_id": dossier_id,
                    "number": number,
                    "name": f"{rng.choice(WORDS).title()} Person {person_id}",
                    "added_at": row["created_at"],
                }
            )
    levels: dict[int, tuple[int, datetime]] = {}
    assessment_rows = []
    for n in range(assessments):
        dossier_id = rng.randint(1, dossiers)
        at = BASE + timedelta(minutes=11 * n)
        level = rng.randint(1, 4)
        levels[dossier_id] = (level, at)
        # A third of a family's assessments are of one person in it.
        persons = persons_of.get(dossier_id, [])
        person_id = rng.choice(persons) if persons and rng.random() < 1 / 3 else None
        assessment_rows.append(
            {
                "dossier_id": dossier_id,
                "person_id": person_id,
                "level": level,
                "source": rng.choice(["OCAD", "police", "VSSE"]),
                "summary": f"assessment {n} {rng.choice(WORDS)}",
                "review_at": at + timedelta(days=30),
                "assessed_by": "@seed:aegis.test",
                "created_at": at,
                "event_id": f"$seed{n}",
            }
        )
    for row in rows:
        if row["id"] in levels:
            row["level"], row["level_at"] = levels[row["id"]]
        else:
            row["level_at"] = None
    notes = [
        {
            "dossier_id": rng.randint(1, dossiers),
            "author": "@seed:aegis.test",
            "text": f"note {n} about the {rng.choice(WORDS)}",
            "created_at": BASE,
            "event_id": f"$note{n}",
        }
        for n in range(dossiers)
    ]
    async with db.transaction() as session:
        for start in range(0, len(rows), 2000):
            await session.execute(insert(DossierRow), rows[start : start + 2000])
        for start in range(0, len(person_rows), 5000):
            await session.execute(insert(PersonRow), person_rows[start : start + 5000])
        for start in range(0, len(assessment_rows), 5000):
            await session.execute(insert(AssessmentRow), assessment_rows[start : start + 5000])
        for start in range(0, len(notes), 5000):
            await session.execute(insert(NoteRow), notes[start : start + 5000])
        await session.execute(insert(DossierCounter), [{"year": 2025, "last": dossiers}])
        # Rows written straight into the tables are indexed for search the way the
        # migration indexes an existing database.
        await session.run_sync(lambda sync: fill_all(sync.connection()))
    if not db.is_sqlite:
        async with db.transaction() as session:
            # Explicit ids bypassed the sequence; later inserts must not collide with them.
            await session.execute(
                text("SELECT setval('dossiers_id_seq', (SELECT max(id) FROM dossiers))")
            )
            if person_rows:
                await session.execute(
                    text(
                        "SELECT setval('dossier_persons_id_seq', "
                        "(SELECT max(id) FROM dossier_persons))"
                    )
                )
            # Planner statistics, as autovacuum keeps them on a server that has been running:
            # without them PostgreSQL guesses a few hundred search matches where there are
            # thousands, and plans `!dossier find` for the wrong case.
            await session.execute(text("ANALYZE"))
