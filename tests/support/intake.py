"""The partner intake served for real on loopback: an Intake over a test database, a clock
the test can move, and partners made the way `aegis partner add` makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.intake.service import Intake
from bot.web import Routes, WebServer
from storage.db import Database
from storage.store import Store
from storage.tables import AuditEntry, ReportRow
from workflow import AccessPolicy, Policy, RuntimeInfo, Workflow
from workflow.early_warning import EarlyWarningPolicy
from workflow.early_warning_model import NewPartner, Sector

BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass
class MovableClock:
    at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Served:
    db: Database
    intake: Intake
    clock: MovableClock
    workflow: Callable[[AsyncSession], Workflow]
    base: str

    async def partner(self, name: str, sector: Sector = Sector.ENERGY) -> NewPartner:
        async with self.db.transaction() as session:
            return await self.workflow(session).early_warning.add_partner(
                "admin", name, sector, None
            )

    async def revoke(self, partner_id: int) -> None:
        async with self.db.transaction() as session:
            await self.workflow(session).early_warning.revoke("admin", partner_id)

    async def report_count(self) -> int:
        async with self.db.transaction() as session:
            return int(await session.scalar(select(func.count(ReportRow.id))) or 0)

    async def audited(self, action: str) -> list[AuditEntry]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            )
            return list(rows)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def a_report(clock: MovableClock, **changes: Any) -> dict[str, Any]:
    """A good report, as JSON, seen an hour ago."""
    report: dict[str, Any] = {
        "observed_at": (clock.now() - timedelta(hours=1)).astimezone(BRUSSELS).isoformat(),
        "location": {"address": "Gate 3, Doel power station", "lat": 51.3245, "lon": 4.2590},
        "category": "vehicle",
        "description": "A grey van stopped at the gate for ten minutes, engine running.",
        "vehicle_plate": "1-ABC-123",
        "contact": "Security desk, +32 3 000 00 00",
        "attachments": ["https://files.example.com/gate3.jpg"],
    }
    report.update(changes)
    return report


@asynccontextmanager
async def serve(
    db: Database,
    parts: Callable[[Intake, MovableClock], Iterable[Routes]],
    reports_per_hour: int = 30,
    clock: MovableClock | None = None,
) -> AsyncIterator[Served]:
    clock = clock or MovableClock()
    policy = Policy(
        timezone=BRUSSELS, early_warning=EarlyWarningPolicy(reports_per_hour=reports_per_hour)
    )
    access = AccessPolicy(roles={}, allowed_servers=frozenset(), home_server="aegis.test")
    info = RuntimeInfo("test", clock.now())

    def workflow(session: AsyncSession) -> Workflow:
        return Workflow(Store(session), clock.now(), access, info, policy)

    intake = Intake(db, workflow, BRUSSELS, "http://127.0.0.1")
    server = WebServer(parts(intake, clock))
    port = await server.start("127.0.0.1:0")
    intake.public_url = f"http://127.0.0.1:{port}"
    try:
        yield Served(db, intake, clock, workflow, intake.public_url)
    finally:
        await server.stop()
