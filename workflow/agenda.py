"""What each meeting's agenda holds, read from the database when it is asked for or posted.

Returns data only; commands/agenda_views.py turns it into messages and a Markdown file."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflow.model import Assessment, Dossier, DossierKind, Measure, ThreatLevel

if TYPE_CHECKING:
    from storage.meetings import AgendaStore
    from workflow.core import Workflow
    from workflow.measures import Proposed

WEEK = timedelta(days=7)
ENDING_SOON = timedelta(days=30)
DIGEST_WINDOW = timedelta(hours=24)
DIGEST_AHEAD = timedelta(hours=48)


class AgendaKind(enum.StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    DAILY = "daily"


class Flag(enum.StrEnum):
    REVIEW_OVERDUE = "assessment past its review date"
    ENDING_SOON = "ends within 30 days"
    NOT_ACKNOWLEDGED = "no police acknowledgement"
    NO_ASSESSMENT = "dossier has measures but no assessment"


@dataclass(frozen=True)
class MeasureLine:
    measure: Measure
    dossier: Dossier
    review_at: datetime | None
    """Review date of the dossier's latest assessment; None when it has none."""


@dataclass(frozen=True)
class AssessmentChange:
    assessment: Assessment
    title: str
    previous: ThreatLevel | None


@dataclass(frozen=True)
class Change:
    at: datetime
    dossier_ref: str
    actor: str
    kind: str
    text: str


@dataclass(frozen=True)
class Review:
    line: MeasureLine
    flags: tuple[Flag, ...]


@dataclass(frozen=True)
class DossierWeek:
    dossier: Dossier
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class WeeklyAgenda:
    at: datetime
    start: datetime
    end: datetime
    dossiers: tuple[DossierWeek, ...]
    assessments: tuple[AssessmentChange, ...]
    pending: tuple[Proposed, ...]
    early_warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonthlyAgenda:
    at: datetime
    groups: tuple[tuple[DossierKind, tuple[Review, ...]], ...]
    """Measures in force at `at`, the ones counted."""
    starting: tuple[MeasureLine, ...] = ()
    """Approved, with a start still to come: listed apart, not counted as in force."""

    @property
    def count(self) -> int:
        return sum(len(reviews) for _, reviews in self.groups)


@dataclass(frozen=True)
class DailyAgenda:
    at: datetime
    changes: tuple[Change, ...]
    measures_due: tuple[MeasureLine, ...]
    reviews_due: tuple[tuple[Dossier, datetime], ...]
    pending: tuple[Proposed, ...]
    unacknowledged: tuple[MeasureLine, ...]


Agenda = WeeklyAgenda | MonthlyAgenda | DailyAgenda


def flags(line: MeasureLine, at: datetime) -> tuple[Flag, ...]:
    found = []
    if line.review_at is None:
        found.append(Flag.NO_ASSESSMENT)
    elif line.review_at < at:
        found.append(Flag.REVIEW_OVERDUE)
    if line.measure.ends_at is not None and line.measure.ends_at <= at + ENDING_SOON:
        found.append(Flag.ENDING_SOON)
    if line.measure.acknowledged_at is None:
        found.append(Flag.NOT_ACKNOWLEDGED)
    return tuple(found)


class AgendaRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> AgendaStore:
        return self.wf.store.agenda

    async def build(self, kind: AgendaKind, at: datetime | None = None) -> Agenda:
        moment = at or self.wf.now
        if kind is AgendaKind.WEEKLY:
            return await self.weekly(moment)
        if kind is AgendaKind.MONTHLY:
            return await self.monthly(moment)
        return await self.daily(moment)

    async def _pending(self) -> tuple[Proposed, ...]:
        return tuple(await self.wf.measures.contexts(await self.wf.store.measures.pending()))

    async def weekly(self, at: datetime) -> WeeklyAgenda:
        """Around `at`: the past 7 days and the next 7."""
        start, end = at - WEEK, at + WEEK
        dossiers = await self.store.dossiers_in_period(start, end)
        measures = await self.store.measures_of([d.ref for d in dossiers])
        by_dossier: dict[str, list[Measure]] = {}
        for measure in measures:
            by_dossier.setdefault(measure.dossier_ref, []).append(measure)
        return WeeklyAgenda(
            at=at,
            start=start,
            end=end,
            dossiers=tuple(DossierWeek(d, tuple(by_dossier.get(d.ref, ()))) for d in dossiers),
            assessments=tuple(await self.store.assessments_between(start, at)),
            pending=await self._pending(),
        )

    async def monthly(self, at: datetime) -> MonthlyAgenda:
        """Every measure in force at `at`, grouped by persons, institutions and events; the
        approved ones still to start apart, as they need no decision yet."""
        groups: dict[DossierKind, list[Review]] = {kind: [] for kind in DossierKind}
        starting = []
        for line in await self.store.measures():
            if line.measure.in_force_at(at):
                groups[line.dossier.kind].append(Review(line, flags(line, at)))
            elif line.measure.scheduled_at(at):
                starting.append(line)
        return MonthlyAgenda(
            at, tuple((kind, tuple(groups[kind])) for kind in DossierKind), tuple(starting)
        )

    async def daily(self, at: datetime) -> DailyAgenda:
        """Orders are out for measures approved to start later too, so their acknowledgement
        is chased; what ends or falls due for review is about measures in force only, and a
        measure starting within 48 hours is listed for that."""
        lines = await self.store.measures()
        horizon = at + DIGEST_AHEAD
        due = tuple(
            line
            for line in lines
            if (
                line.measure.in_force_at(at)
                and (
                    (line.measure.ends_at is not None and line.measure.ends_at <= horizon)
                    or (line.measure.review_at is not None and line.measure.review_at <= horizon)
                )
            )
            or (
                line.measure.scheduled_at(at)
                and line.measure.starts_at is not None
                and line.measure.starts_at <= horizon
            )
        )
        return DailyAgenda(
            at=at,
            changes=tuple(await self.store.changes_since(at - DIGEST_WINDOW)),
            measures_due=due,
            reviews_due=tuple(await self.store.reviews_due(horizon)),
            pending=await self._pending(),
            unacknowledged=tuple(line for line in lines if line.measure.acknowledged_at is None),
        )
