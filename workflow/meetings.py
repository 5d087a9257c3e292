"""Configured meetings: their occurrences in local time, skips and moves of one occurrence,
and the reminder steps the scheduler runs.

Recurrence is python-dateutil's rrule, anchored at a local midnight in `bot.timezone`, so a
10:00 meeting stays at 10:00 local time across daylight-saving changes. Each reminder is keyed
in the fired table (kind `reminder`), so it is posted once per occurrence and offset, across
restarts and with two processes running.

A meeting's first sighting by the scheduler is kept too (kind `meeting-seen`, per name and
rule): occurrences before it were never the bot's to post, so they are neither posted nor
reported as missed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from config.settings import MeetingSettings
from workflow.agenda import Agenda, AgendaKind
from workflow.clock import human
from workflow.errors import Refused

if TYPE_CHECKING:
    from storage.meetings import MeetingStore
    from workflow.core import Workflow

log = logging.getLogger(__name__)

FIRED_KIND = "reminder"
SEEN_KIND = "meeting-seen"
SKIP, MOVE = "skip", "move"
# A reminder posted this long after it was due says so: the scheduler's timer posts within
# seconds, so a minute late means the bot was not running when it fell due.
LATE_AFTER = timedelta(minutes=1)
# "Starting now" is not posted more than this long after the start.
START_GRACE = timedelta(minutes=15)
# How far back missed steps are looked for (to drop them with a log line).
LOOKBACK = timedelta(days=1)
HORIZON = timedelta(days=400)
# How far back the calendar links each occurrence to the agenda posted for it.
AGENDAS_SHOWN = timedelta(days=31)
# Offsets count on the local clock, so a day before can be 23 or 25 hours.
DST_SLACK = timedelta(hours=2)


@dataclass(frozen=True)
class MeetingSpec:
    name: str
    rrule: str
    room: str
    agenda: AgendaKind
    remind_before: tuple[timedelta, ...] = (timedelta(days=1), timedelta(hours=1))
    address: str = ""
    """The room's ID or alias as configured, for links to it; empty when not known."""


@dataclass(frozen=True)
class OccurrenceChange:
    meeting: str
    occurrence: datetime
    action: str
    moved_to: datetime | None
    reason: str
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True)
class Occurrence:
    meeting: MeetingSpec
    original: datetime
    """When the rule puts it (UTC): the occurrence's identity for skips and moves."""
    at: datetime
    """When it takes place (UTC): the original, or where it was moved to."""
    skipped: bool = False
    moved: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Due:
    occurrence: Occurrence
    offset: timedelta | None
    """How long before the start; None for the "starting now" post."""
    tz: ZoneInfo

    @property
    def label(self) -> str:
        return "start" if self.offset is None else offset_label(self.offset)

    @property
    def key(self) -> str:
        o = self.occurrence
        return f"{o.meeting.name}/{o.at.astimezone(UTC).isoformat()}/{self.label}"

    @property
    def name(self) -> str:
        return self.key

    @property
    def due_at(self) -> datetime:
        """Counted on the local clock: `1d` before Sunday 10:00 is Saturday 10:00, even when
        the clocks change in between."""
        local = self.occurrence.at.astimezone(self.tz) - (self.offset or timedelta(0))
        return local.astimezone(UTC)


@dataclass(frozen=True)
class Seen:
    """The scheduler's first sighting of a meeting's configuration, to be recorded."""

    meeting: MeetingSpec

    @property
    def key(self) -> str:
        """Per name and rule: a changed rule is a new configuration. Hashed, as a rule can
        be longer than the fired table's key."""
        digest = hashlib.sha256(self.meeting.rrule.encode()).hexdigest()[:16]
        return f"{self.meeting.name}/{digest}"

    @property
    def name(self) -> str:
        return f"seen/{self.key}"


@dataclass(frozen=True)
class Reminder:
    due: Due
    late: bool
    agenda: Agenda


@dataclass(frozen=True)
class Starting:
    due: Due
    agenda_link: tuple[str, str] | None
    """(room, event ID) of the agenda posted with the last reminder, once sent."""


@dataclass(frozen=True)
class Series:
    """A meeting as a calendar sees it: the rule from its first occurrence, with the
    occurrences skipped or moved."""

    meeting: MeetingSpec
    first: datetime
    """The rule's first occurrence (UTC)."""
    changes: tuple[OccurrenceChange, ...]
    agendas: tuple[tuple[Occurrence, tuple[str, str]], ...] = ()
    """Recent occurrences whose agenda was posted, with its message (room, event ID)."""


def meeting_specs(
    meetings: Mapping[str, MeetingSettings], rooms: Mapping[str, str] | None = None
) -> tuple[MeetingSpec, ...]:
    """`rooms` maps the configured room keys to their IDs or aliases."""
    return tuple(
        MeetingSpec(
            name,
            m.rrule,
            m.room,
            AgendaKind(m.agenda),
            tuple(m.remind_before),
            (rooms or {}).get(m.room, ""),
        )
        for name, m in meetings.items()
    )


def offset_label(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def agenda_ref(occurrence: Occurrence, offset: timedelta) -> str:
    """Names the reminder's agenda message (at most 64 characters: outbox.ref)."""
    stamp = occurrence.at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    return f"agenda:{occurrence.meeting.name}/{stamp}/{offset_label(offset)}"


ANCHOR = datetime(2024, 1, 1)
"""Rules are read from this local midnight: it sets a rule's unstated fields (minute 0)."""


@lru_cache(maxsize=64)
def _rule(text: str, tz: ZoneInfo) -> rrule:
    anchor = ANCHOR.replace(tzinfo=tz)
    parsed = rrulestr(text, dtstart=anchor)
    assert isinstance(parsed, rrule)
    return parsed


def base_occurrences(
    spec: MeetingSpec, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """The rule's starts in [start, end], in UTC; computed in local time."""
    rule = _rule(spec.rrule, tz)
    found = rule.between(start.astimezone(tz), end.astimezone(tz), inc=True)
    return [moment.astimezone(UTC) for moment in found]


class MeetingRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> MeetingStore:
        return self.wf.store.meetings

    @property
    def tz(self) -> ZoneInfo:
        return self.wf.policy.timezone

    @property
    def specs(self) -> tuple[MeetingSpec, ...]:
        return self.wf.policy.meetings

    def spec(self, name: str) -> MeetingSpec:
        for spec in self.specs:
            if spec.name == name.lower():
                return spec
        known = ", ".join(s.name for s in self.specs) or "none configured"
        raise Refused(f"no meeting {name!r} (meetings: {known})")

    async def occurrences(
        self, spec: MeetingSpec, start: datetime, end: datetime
    ) -> list[Occurrence]:
        """Occurrences taking place in [start, end], skipped ones included (marked)."""
        changes = {c.occurrence: c for c in await self.store.changes(spec.name)}
        found = {
            moment: Occurrence(spec, moment, moment)
            for moment in base_occurrences(spec, self.tz, start, end)
        }
        for original, change in changes.items():
            if original not in found:
                if change.action != MOVE or change.moved_to is None:
                    continue
                found[original] = Occurrence(spec, original, original)
            occurrence = found[original]
            if change.action == SKIP:
                found[original] = replace(occurrence, skipped=True, reason=change.reason)
            elif change.moved_to is not None:
                found[original] = replace(
                    occurrence, at=change.moved_to, moved=True, reason=change.reason
                )
        return sorted(
            (o for o in found.values() if start <= o.at <= end),
            key=lambda o: (o.at, o.meeting.name),
        )

    async def series(self, kind: AgendaKind | None = None) -> list[Series]:
        """Every meeting (of one agenda kind, if given) with its skips and moves, and the
        agendas posted for its occurrences of the past AGENDAS_SHOWN."""
        found = []
        for spec in self.specs:
            if kind is not None and spec.agenda is not kind:
                continue
            first = _rule(spec.rrule, self.tz).after(ANCHOR.replace(tzinfo=self.tz), inc=True)
            if first is None:
                continue
            changes = tuple(await self.store.changes(spec.name))
            agendas = []
            ahead = max(spec.remind_before, default=timedelta(0)) + DST_SLACK
            now = self.wf.now
            for occurrence in await self.occurrences(spec, now - AGENDAS_SHOWN, now + ahead):
                link = await self.agenda_link(occurrence)
                if link is not None:
                    agendas.append((occurrence, link))
            found.append(Series(spec, first.astimezone(UTC), changes, tuple(agendas)))
        return found

    async def agenda_link(self, occurrence: Occurrence) -> tuple[str, str] | None:
        """(room, event ID) of the last agenda posted for the occurrence, once sent."""
        for offset in sorted(occurrence.meeting.remind_before):
            link = await self.wf.store.measures.event_of_ref(agenda_ref(occurrence, offset))
            if link is not None:
                return link
        return None

    async def upcoming(self, name: str | None, count: int = 3) -> list[Occurrence]:
        specs = [self.spec(name)] if name else list(self.specs)
        found: list[Occurrence] = []
        for spec in specs:
            found += (await self.occurrences(spec, self.wf.now, self.wf.now + HORIZON))[:count]
        return sorted(found, key=lambda o: (o.at, o.meeting.name))

    def _day(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(0), tzinfo=self.tz)
        return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)

    async def on(self, spec: MeetingSpec, day: date) -> Occurrence:
        """The occurrence the rule puts on that local date."""
        start, end = self._day(day)
        originals = [
            o
            for o in await self.occurrences(spec, start - HORIZON, end + HORIZON)
            if start <= o.original < end
        ]
        if not originals:
            raise Refused(f"{spec.name} has no occurrence on {day:%a %d %b %Y}")
        return originals[0]

    async def skip(
        self, actor: str, event_id: str, name: str, day: date, reason: str
    ) -> Occurrence:
        spec = self.spec(name)
        occurrence = await self.on(spec, day)
        if occurrence.at <= self.wf.now:
            raise Refused(f"the {spec.name} meeting of {day:%a %d %b %Y} has already started")
        await self._record(actor, event_id, occurrence, SKIP, None, reason)
        return replace(occurrence, skipped=True, reason=reason)

    async def move(
        self, actor: str, event_id: str, name: str, day: date, to: datetime, reason: str
    ) -> Occurrence:
        spec = self.spec(name)
        if to <= self.wf.now:
            raise Refused(f"cannot move a meeting into the past ({human(to, self.tz)})")
        occurrence = await self.on(spec, day)
        if occurrence.at <= self.wf.now:
            raise Refused(f"the {spec.name} meeting of {day:%a %d %b %Y} has already started")
        await self._record(actor, event_id, occurrence, MOVE, to, reason)
        return replace(occurrence, at=to, moved=True, skipped=False, reason=reason)

    async def _record(
        self,
        actor: str,
        event_id: str,
        occurrence: Occurrence,
        action: str,
        to: datetime | None,
        reason: str,
    ) -> None:
        await self.store.set_change(
            OccurrenceChange(
                occurrence.meeting.name,
                occurrence.original,
                action,
                to,
                reason,
                actor,
                self.wf.now,
            )
        )
        detail = {"occurrence": occurrence.original.isoformat(), "reason": reason}
        if to is not None:
            detail["to"] = to.astimezone(UTC).isoformat()
        await self.wf.audit(
            actor, f"meeting.{action}", f"meeting:{occurrence.meeting.name}", event_id, detail
        )

    # --- the scheduler's steps --------------------------------------------------------------

    async def _configured(self, spec: MeetingSpec) -> datetime | None:
        """When the scheduler first saw this meeting's configuration; None if never."""
        return await self.wf.store.measures.fired_at(SEEN_KIND, Seen(spec).key)

    def _steps(self, occurrence: Occurrence) -> list[Due]:
        """Every step of one occurrence: its reminders, and the "starting now" post unless
        a reminder at the start (offset 0) takes its place."""
        spec = occurrence.meeting
        steps = [Due(occurrence, offset, self.tz) for offset in spec.remind_before]
        if timedelta(0) not in spec.remind_before:
            steps.append(Due(occurrence, None, self.tz))
        return steps

    async def due(self) -> list[Due | Seen]:
        """Steps due now and not yet fired. Of an occurrence's reminders only the latest due
        one is posted: after downtime, one late reminder rather than a burst of them.
        Occurrences from before the meeting was first seen are left alone: they were not
        missed, the meeting did not exist for the bot yet."""
        now = self.wf.now
        fired = self.wf.store.measures.fired
        found: list[Due | Seen] = []
        for spec in self.specs:
            since = await self._configured(spec)
            if since is None:
                found.append(Seen(spec))
                since = now
            ahead = max(spec.remind_before, default=timedelta(0)) + DST_SLACK
            for occurrence in await self.occurrences(spec, now - LOOKBACK, now + ahead):
                if occurrence.skipped or occurrence.at < since:
                    continue
                steps = [
                    step
                    for step in self._steps(occurrence)
                    if step.due_at <= now and not await fired(FIRED_KIND, step.key)
                ]
                reminders = [step for step in steps if step.offset is not None]
                if reminders:
                    found.append(min(reminders, key=lambda step: step.offset or timedelta(0)))
                found += [step for step in steps if step.offset is None]
        return found

    async def next_due(self) -> datetime | None:
        """The earliest step after now not yet fired, looking further ahead only while
        nothing is found (a weekly meeting needs a week, a monthly one a month)."""
        now = self.wf.now
        earliest: list[datetime] = []
        for spec in self.specs:
            since = await self._configured(spec)
            if since is None:
                return now  # its first sighting is still to be recorded
            found = await self._next_of(spec, since)
            if found is not None:
                earliest.append(found)
        return min(earliest, default=None)

    async def _next_of(self, spec: MeetingSpec, since: datetime) -> datetime | None:
        now = self.wf.now
        fired = self.wf.store.measures.fired
        # A step due by `now + window - ahead` belongs to an occurrence within the window.
        ahead = max(spec.remind_before, default=timedelta(0)) + DST_SLACK
        window = ahead + timedelta(days=1)
        while True:
            times = [
                step.due_at
                for occurrence in await self.occurrences(spec, now, now + window)
                if not occurrence.skipped and occurrence.at >= since
                for step in self._steps(occurrence)
                if step.due_at > now and not await fired(FIRED_KIND, step.key)
            ]
            found = min(times, default=None)
            if (found is not None and found <= now + window - ahead) or window >= HORIZON:
                return found
            window = min(window * 2, HORIZON)

    async def run(self, due: Due | Seen) -> Reminder | Starting | None:
        """Posts nothing twice; a reminder whose meeting started is dropped with a log line."""
        now = self.wf.now
        if isinstance(due, Seen):
            await self.wf.store.measures.fire(SEEN_KIND, due.key, now)
            return None
        if not await self.wf.store.measures.fire(FIRED_KIND, due.key, now):
            return None
        occurrence = due.occurrence
        if due.offset is not None:
            for offset in occurrence.meeting.remind_before:
                if offset > due.offset:  # superseded by this later reminder
                    await self.wf.store.measures.fire(
                        FIRED_KIND, Due(occurrence, offset, self.tz).key, now
                    )
        if due.offset is None:
            if now - occurrence.at > START_GRACE:
                log.warning("meeting start post %s dropped: the bot was down at the start", due.key)
                return None
            return Starting(due, await self.agenda_link(occurrence))
        if now >= occurrence.at and due.offset > timedelta(0):
            log.warning("reminder %s dropped: the meeting already started", due.key)
            return None
        if due.offset == timedelta(0) and now - occurrence.at > START_GRACE:
            log.warning("agenda %s dropped: the bot was down at the start", due.key)
            return None
        agenda = await self.wf.agenda.build(occurrence.meeting.agenda, occurrence.at)
        return Reminder(due, now - due.due_at > LATE_AFTER, agenda)
