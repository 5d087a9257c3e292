"""Measures in bulk for the monthly agenda (tests and bench): written straight into the
tables, with their dossiers and assessments, in a fixed mix of kinds, states and flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, text

from storage.db import Database
from storage.tables import AssessmentRow, DossierRow, MeasureRow
from workflow.model import DossierKind, MeasureType

KINDS = list(DossierKind)
TYPES = list(MeasureType)


@dataclass(frozen=True)
class Seeded:
    in_force: list[int]
    ended: list[int]


async def seed_measures(db: Database, now: datetime, measures: int, per_dossier: int = 4) -> Seeded:
    """`measures` in force (every 10th provisional) plus one ended per dossier; every 7th
    dossier has no assessment, every 5th an overdue one; every 3rd measure unacknowledged,
    every 11th ending within 30 days."""
    dossiers = (measures + per_dossier - 1) // per_dossier
    dossier_rows, assessment_rows, measure_rows = [], [], []
    for n in range(1, dossiers + 1):
        kind = KINDS[n % 3]
        dossier_rows.append(
            {
                "id": n,
                "ref": f"D-2024-{n:04d}",
                "kind": kind.value,
                "category": "other",
                "title": f"Seeded {kind} {n}",
                "status": "open",
                "created_by": "@seed:aegis.test",
                "created_at": now - timedelta(days=200),
                "updated_at": now - timedelta(days=200),
                "level": None if n % 7 == 0 else 1 + n % 4,
                "level_at": None if n % 7 == 0 else now - timedelta(days=n % 60),
            }
        )
        if n % 7:
            review = now - timedelta(days=2) if n % 5 == 0 else now + timedelta(days=20)
            assessment_rows.append(
                {
                    "dossier_id": n,
                    "level": 1 + n % 4,
                    "source": "OCAD",
                    "summary": f"seeded assessment {n}",
                    "review_at": review,
                    "assessed_by": "@seed:aegis.test",
                    "created_at": now - timedelta(days=n % 60),
                    "event_id": f"$a{n}",
                }
            )
    in_force, ended = [], []
    for m in range(1, measures + 1):
        measure_rows.append(
            {
                "id": m,
                "dossier_id": 1 + (m - 1) // per_dossier,
                "type": TYPES[m % len(TYPES)].value,
                "details": f"seeded measure {m}",
                "starts_at": now - timedelta(days=90),
                "ends_at": now + timedelta(days=10 if m % 11 == 0 else 120),
                "state": "provisional" if m % 10 == 0 else "active",
                "created_by": "@seed:aegis.test",
                "created_at": now - timedelta(days=90),
                "updated_at": now - timedelta(days=90),
                "acknowledged_by": None if m % 3 == 0 else "@police:aegis.test",
                "acknowledged_at": None if m % 3 == 0 else now - timedelta(days=89),
            }
        )
        in_force.append(m)
    for n in range(1, dossiers + 1):
        m = measures + n
        measure_rows.append(
            {
                "id": m,
                "dossier_id": n,
                "type": "patrol",
                "details": "ended long ago",
                "starts_at": now - timedelta(days=300),
                "ends_at": now - timedelta(days=200),
                "state": "ended",
                "created_by": "@seed:aegis.test",
                "created_at": now - timedelta(days=300),
                "updated_at": now - timedelta(days=200),
                "acknowledged_by": None,
                "acknowledged_at": None,
            }
        )
        ended.append(m)
    async with db.transaction() as session:
        await session.execute(insert(DossierRow), dossier_rows)
        if assessment_rows:
            await session.execute(insert(AssessmentRow), assessment_rows)
        for start in range(0, len(measure_rows), 2000):
            await session.execute(insert(MeasureRow), measure_rows[start : start + 2000])
    if not db.is_sqlite:
        async with db.transaction() as session:
            for table in ("dossiers", "measures", "threat_assessments"):
                await session.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    return Seeded(in_force, ended)
