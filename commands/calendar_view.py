"""The meeting schedule as iCalendar: one recurring event per meeting, in local time.

A calendar app expands the rule itself, so the feed stays small and a subscriber sees every
future occurrence. Each event carries its TZID with a VTIMEZONE (10:00 stays 10:00 across
daylight saving); a skipped occurrence is an EXDATE, a moved one an override with its
RECURRENCE-ID. Shared by `!agenda … format=ics` and the /calendar.ics feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

from workflow.agenda import AgendaKind
from workflow.meetings import SKIP, MeetingSpec, Series, offset_label

MEETING_LENGTH = timedelta(hours=1)
NO_MEETINGS = "Meetings are configured under `meetings` in the config file."

HOLDS = {
    AgendaKind.WEEKLY: "events and visits of the past and coming week, new and changed "
    "threat assessments, proposals awaiting a decision and early-warning reports",
    AgendaKind.MONTHLY: 'the "Ambassades" review: every measure in force, flagged, each to '
    "extend, limit, maintain or end",
    AgendaKind.DAILY: "the last 24 hours' changes, what expires or needs review within 48 "
    "hours, pending proposals and execution orders not yet acknowledged",
}


def no_meetings(kind: AgendaKind | None = None) -> str:
    """Said instead of an empty calendar."""
    return (
        f"No {kind} meetings are configured. {NO_MEETINGS}"
        if kind
        else (f"No meetings are configured. {NO_MEETINGS}")
    )


def room_link(spec: MeetingSpec) -> str:
    return f"https://matrix.to/#/{spec.address}" if spec.address else spec.room


def description(spec: MeetingSpec) -> str:
    """What the agenda holds, and where and when it is posted."""
    when = ", ".join(offset_label(o) for o in spec.remind_before)
    posted = f"Posted in {room_link(spec)}" + (f" {when} before the meeting" if when else "")
    return (
        f"The {spec.agenda} agenda: {HOLDS[spec.agenda]}. {posted}; "
        f"ask for it any time with !agenda {spec.agenda}."
    )


def _uid(spec: MeetingSpec) -> str:
    return f"meeting-{spec.name}@aegis"


def _event(spec: MeetingSpec, start: datetime, stamp: datetime, tz: ZoneInfo) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", _uid(spec))
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", start.astimezone(tz))
    event.add("dtend", start.astimezone(tz) + MEETING_LENGTH)
    event.add("summary", f"{spec.name} meeting ({spec.agenda} agenda)")
    event.add("location", room_link(spec))
    return event


def _override(
    spec: MeetingSpec,
    original: datetime,
    at: datetime,
    notes: list[str],
    stamp: datetime,
    tz: ZoneInfo,
) -> icalendar.Event:
    """One occurrence, moved or with its agenda posted, standing in for the one the rule
    puts at RECURRENCE-ID."""
    event = _event(spec, at, stamp, tz)
    event.add("recurrence-id", original.astimezone(tz))
    event.add("description", "\n\n".join([*notes, description(spec)]))
    return event


def _overrides(one: Series, stamp: datetime, tz: ZoneInfo) -> list[icalendar.Event]:
    """Moved occurrences and those whose agenda is posted: where, and the agenda's link."""
    skipped = {c.occurrence for c in one.changes if c.action == SKIP}
    moved = {c.occurrence: c for c in one.changes if c.action != SKIP and c.moved_to}
    notes = {
        original: [f"Moved: {change.reason}" if change.reason else "Moved."]
        for original, change in moved.items()
    }
    for occurrence, (room, event_id) in one.agendas:
        if occurrence.original not in skipped:
            link = f"Agenda: https://matrix.to/#/{room}/{event_id}"
            notes.setdefault(occurrence.original, []).insert(0, link)
    events = []
    for original, lines in sorted(notes.items()):
        change = moved.get(original)
        at = change.moved_to if change is not None and change.moved_to else original
        events.append(_override(one.meeting, original, at, lines, stamp, tz))
    return events


def calendar(series: list[Series], now: datetime, tz: ZoneInfo, name: str) -> bytes:
    """An iCalendar file of the meetings; at least one is expected (see NO_MEETINGS)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Aegis//meetings//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", tz.key)
    for one in series:
        spec = one.meeting
        event = _event(spec, one.first, now, tz)
        event.add("rrule", icalendar.vRecur.from_ical(spec.rrule))
        event.add("description", description(spec))
        skipped = [c.occurrence.astimezone(tz) for c in one.changes if c.action == SKIP]
        if skipped:
            event.add("exdate", skipped)
        cal.add_component(event)
        for override in _overrides(one, now, tz):
            cal.add_component(override)
    # Transitions from the first meeting on; the library's default end (2038) stays.
    first = min((one.first for one in series), default=now)
    cal.add_missing_timezones(first_date=first.astimezone(tz).date())
    return bytes(cal.to_ical())
