"""What each meeting's agenda holds, read from the database when it is asked for or posted.

Returns data only; commands/agenda_views.py turns it into messages and a Markdown file."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from workflow.model import Assessment, Dossier, DossierKind, Measure, Person, ThreatLevel

if TYPE_CHECKING:
    from storage.meetings import AgendaStore
    from workflow.core import Workflow
    from workflow.measures import Proposed

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
class Protected:
    """A person covered by measures in force: their own and their dossier's as a whole."""

    person: Person
    dossier: Dossier
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class MonthlyAgenda:
    at: datetime
    start: datetime
    end: datetime
    groups: tuple[tuple[DossierKind, tuple[Review, ...]], ...]
    persons: tuple[Protected, ...] = ()
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


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight, in UTC: aware datetimes sharing one zone compare by wall clock."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _last_moment_before(day: date, tz: ZoneInfo) -> datetime:
    """The end of the day before `day`, inclusive; local midnights keep DST days right."""
    return _midnight(day, tz) - timedelta(microseconds=1)


def week_window(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From Monday 00:00 of the calendar week before `at`'s to the end of Sunday of the
    week after it, in local time: the past week and the coming one, whatever the weekday."""
    monday = at.astimezone(tz).date() - timedelta(days=at.astimezone(tz).weekday())
    return (
        _midnight(monday - timedelta(days=7), tz),
        _last_moment_before(monday + timedelta(days=14), tz),
    )


def month_window(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month of `at`, in local time: the first 00:00 to the end of the last day."""
    first = at.astimezone(tz).date().replace(day=1)
    following = (first + timedelta(days=31)).replace(day=1)
    return _midnight(first, tz), _last_moment_before(following, tz)


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


def protected(lines: list[MeasureLine]) -> tuple[Protected, ...]:
    """Each person covered now, with the measures protecting them: their own, then their
    dossier's as a whole (a patrol at the family's home protects each of them)."""
    by_dossier: dict[str, list[MeasureLine]] = {}
    for line in lines:
        by_dossier.setdefault(line.dossier.ref, []).append(line)
    found = []
    for ref in sorted(by_dossier):
        dossier = by_dossier[ref][0].dossier
        measures = [line.measure for line in by_dossier[ref]]
        for person in dossier.covered:
            own = [m for m in measures if m.person_id == person.id]
            whole = [m for m in measures if m.person_id is None]
            if own or whole:
                found.append(Protected(person, dossier, (*own, *whole)))
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
        """The calendar weeks around `at`: the one before, its own, and the one after."""
        start, end = week_window(at, self.wf.policy.timezone)
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
        """Every measure in force at `at`, grouped by persons, institutions and events, for
        the calendar month of `at`; the approved ones still to start apart, as they need no
        decision yet."""
        start, end = month_window(at, self.wf.policy.timezone)
        groups: dict[DossierKind, list[Review]] = {kind: [] for kind in DossierKind}
        starting = []
        lines = await self.store.measures()
        for line in lines:
            if line.measure.in_force_at(at):
                groups[line.dossier.kind].append(Review(line, flags(line, at)))
            elif line.measure.scheduled_at(at):
                starting.append(line)
        return MonthlyAgenda(
            at,
            start,
            end,
            tuple((kind, tuple(groups[kind])) for kind in DossierKind),
            protected(lines),
            tuple(starting),
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
