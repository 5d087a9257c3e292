"""Meetings, reminders and agendas through the real dispatcher, workflow and database (SQLite
and PostgreSQL): local times across daylight saving, reminders exactly once, late or dropped,
agenda windows and flags, 2,000 measures split into valid messages, skip and the calendar."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import icalendar
import pytest
from dateutil.rrule import rruleset, rrulestr
from pydantic import ValidationError

from bot.calendar_feed import CalendarFeed
from bot.render import notice
from bot.web import WebServer
from commands import Announcement, Reply, RoomKey, Severity
from commands.agenda_views import meeting_announcements
from commands.calendar_view import calendar
from commands.recurrence import describe
from config import Role, Settings
from storage.db import Database
from storage.store import Store
from tests.support.chat import BRUSSELS, START, Chat, text_of
from tests.support.measure_seed import seed_measures
from workflow import Policy, RuntimeInfo, Workflow
from workflow.agenda import AgendaKind, Flag
from workflow.meetings import MeetingSpec, Reminder, Starting, agenda_ref, base_occurrences

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
POLICE = "@paul:aegis.test"
MINA = "@mina:aegis.test"
ROLES = {
    LIAISON: {Role.LIAISON},
    ANALYST: {Role.ANALYST},
    POLICE: {Role.POLICE},
    MINA: {Role.APPROVER},
}

WEEKLY = MeetingSpec(
    "weekly",
    "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0",
    "coordination",
    AgendaKind.WEEKLY,
    (timedelta(days=1), timedelta(hours=1)),
)
# START is Wed 25 Nov 2026 09:00 UTC; the next weekly meeting is Mon 30 Nov 10:00 CET.
MEETING = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def meeting_chat(db: Database, *specs: MeetingSpec, now: datetime = START) -> Chat:
    return Chat(db, ROLES, now=now, policy=Policy(timezone=BRUSSELS, meetings=specs or (WEEKLY,)))


async def run_meetings(chat: Chat) -> list[Reminder | Starting]:
    """One scheduler pass over the meeting steps, as bot/scheduler.py runs them."""
    async with chat.workflow() as workflow:
        due = await workflow.meetings.due()
    done: list[Reminder | Starting] = []
    for step in due:
        async with chat.workflow() as workflow:
            outcome = await workflow.meetings.run(step)
        if outcome is not None:
            done.append(outcome)
    return done


def local(moment: datetime) -> str:
    return moment.astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M %Z")


# --- schedule and daylight saving ---------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # Last Sunday of March 2026 (29th): CET → CEST.
        (datetime(2026, 3, 22, 12, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC)),
        # Last Sunday of October 2026 (25th): CEST → CET.
        (datetime(2026, 10, 18, 12, tzinfo=UTC), datetime(2026, 10, 25, 12, tzinfo=UTC)),
    ],
)
def test_a_10_oclock_meeting_stays_at_10_local_across_daylight_saving(
    before: datetime, after: datetime
) -> None:
    sunday = MeetingSpec("sunday", "FREQ=WEEKLY;BYDAY=SU;BYHOUR=10", "coordination", WEEKLY.agenda)
    found = base_occurrences(sunday, BRUSSELS, before - timedelta(days=1), after)
    assert [m.astimezone(BRUSSELS).strftime("%a %H:%M") for m in found] == ["Sun 10:00"] * 2
    offsets = {m.astimezone(BRUSSELS).utcoffset() for m in found}
    assert len(offsets) == 2  # the same local time is a different UTC time


@pytest.mark.parametrize(
    ("now", "meeting", "reminder_1d"),
    [
        # Sunday 29 March 10:00 CEST; a day before is Saturday 10:00 CET (23 hours earlier).
        ("2026-03-28 08:00", "2026-03-29 10:00 CEST", "2026-03-28 10:00 CET"),
        ("2026-10-24 07:00", "2026-10-25 10:00 CET", "2026-10-24 10:00 CEST"),
    ],
)
async def test_reminders_follow_local_time_across_daylight_saving(
    database: Database, now: str, meeting: str, reminder_1d: str
) -> None:
    sunday = MeetingSpec("sunday", "FREQ=WEEKLY;BYDAY=SU;BYHOUR=10", "coordination", WEEKLY.agenda)
    start = datetime.fromisoformat(now).replace(tzinfo=UTC)
    chat = meeting_chat(database, sunday, now=start)
    seen: dict[str, str] = {}
    for _ in range(30 * 60 // 5):  # every 5 minutes for 30 hours
        for outcome in await run_meetings(chat):
            seen[outcome.due.label] = local(chat.now)
            if isinstance(outcome, Reminder):
                assert not outcome.late
        chat.advance(minutes=5)
    assert seen == {"1d": reminder_1d, "1h": meeting.replace("10:00", "09:00"), "start": meeting}


# --- reminders -----------------------------------------------------------------------------


async def test_each_reminder_fires_exactly_once_in_the_right_room(database: Database) -> None:
    chat = meeting_chat(database, now=MEETING - timedelta(days=1, minutes=1))
    assert await run_meetings(chat) == []
    chat.advance(minutes=1)
    [first] = await run_meetings(chat)
    assert isinstance(first, Reminder) and first.due.label == "1d" and not first.late
    assert await run_meetings(chat) == []  # the fired table remembers
    [announcement, *_] = meeting_announcements(first, BRUSSELS)
    assert announcement.room is RoomKey.COORDINATION
    assert announcement.reply.title == "Reminder: weekly meeting Mon 30 Nov 2026 10:00 (in 1d)"
    assert announcement.ref == agenda_ref(first.due.occurrence, timedelta(days=1))
    assert "Weekly agenda" in text_of(announcement.reply)

    chat.advance(hours=23)
    # Two processes started by mistake: both find the step due, only one posts it.
    async with chat.workflow() as workflow:
        [due] = await workflow.meetings.due()

    async def run() -> object:
        async with chat.workflow() as workflow:
            return await workflow.meetings.run(due)

    results = await asyncio.gather(run(), run(), return_exceptions=True)
    posted = [r for r in results if isinstance(r, Reminder)]
    assert len(posted) == 1 and posted[0].due.label == "1h", results
    assert all(r is None or isinstance(r, Reminder | Exception) for r in results)
    assert await run_meetings(chat) == []


async def test_a_reminder_missed_while_down_is_posted_late_before_the_meeting(
    database: Database,
) -> None:
    # Down from 40 minutes before the 1h reminder until 20 minutes before the meeting.
    chat = meeting_chat(database, now=MEETING - timedelta(days=1))
    assert [o.due.label for o in await run_meetings(chat)] == ["1d"]
    chat.now = MEETING - timedelta(minutes=20)
    [late] = await run_meetings(chat)
    assert isinstance(late, Reminder) and late.late and late.due.label == "1h"
    [announcement, *_] = meeting_announcements(late, BRUSSELS)
    assert announcement.reply.title == (
        "LATE — Reminder: weekly meeting Mon 30 Nov 2026 10:00 "
        "(was due Mon 30 Nov 2026 09:00, posted late)"
    )
    assert announcement.reply.severity is Severity.WARNING
    assert "Posted late: it was due Mon 30 Nov 2026 09:00" in text_of(announcement.reply)
    assert await run_meetings(chat) == []


async def test_a_reminder_missed_until_after_the_start_is_dropped_with_a_log_line(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    chat = meeting_chat(database, now=MEETING - timedelta(days=2))
    assert await run_meetings(chat) == []
    chat.now = MEETING + timedelta(minutes=3)
    with caplog.at_level(logging.WARNING):
        outcomes = await run_meetings(chat)
    assert [type(o) for o in outcomes] == [Starting]  # never a reminder after the start
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    # One line: the 1d reminder is superseded by the 1h one, which is dropped.
    assert len(dropped) == 1 and "/1h dropped: the meeting already started" in dropped[0]
    assert await run_meetings(chat) == []
    # Back only well after the start: not even "starting now".
    chat.now = MEETING + timedelta(days=7, minutes=30)
    assert await run_meetings(chat) == []


async def test_starting_now_links_to_the_agenda_message(database: Database) -> None:
    chat = meeting_chat(database, now=MEETING - timedelta(hours=1))
    reminders = await run_meetings(chat)
    # The 1d reminder was missed; the 1h one supersedes it: one post, not a burst.
    assert [o.due.label for o in reminders] == ["1h"]
    reminder = reminders[0]
    assert isinstance(reminder, Reminder)
    await chat.posted(
        agenda_ref(reminder.due.occurrence, timedelta(hours=1)), "$agenda1h", "!coordination"
    )
    chat.now = MEETING
    [starting] = await run_meetings(chat)
    assert isinstance(starting, Starting)
    assert starting.agenda_link == ("!coordination", "$agenda1h")
    [announcement] = meeting_announcements(starting, BRUSSELS)
    assert announcement.reply.title == "The weekly meeting is starting now"
    assert announcement.reply.lines == ("Agenda: https://matrix.to/#/!coordination/$agenda1h",)


# --- skip, move, next, calendar ------------------------------------------------------------


async def test_skip_is_audited_silences_reminders_and_is_cancelled_in_the_calendar(
    database: Database,
) -> None:
    chat = meeting_chat(database)
    reply = await chat.say(LIAISON, "!meeting skip weekly 2026-11-30 public holiday")
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    assert reply.title == "Skipped the weekly meeting of Mon 30 Nov 2026 10:00"
    refused = await chat.say(ANALYST, "!meeting skip weekly 2026-12-07")
    assert refused.severity is Severity.ERROR
    nothing = await chat.say(LIAISON, "!meeting skip weekly 2026-12-08")
    assert "no occurrence on Tue 08 Dec 2026" in text_of(nothing)

    listed = text_of(await chat.say(POLICE, "!meeting next weekly"))
    assert "Mon 30 Nov 2026 10:00 — weekly (weekly agenda, coordination) — SKIPPED" in listed
    assert "Mon 07 Dec 2026 10:00 — weekly" in listed

    chat.now = MEETING - timedelta(days=1)
    assert await run_meetings(chat) == []
    chat.now = MEETING
    assert await run_meetings(chat) == []

    ics = await chat.say(POLICE, "!agenda weekly format=ics")
    [attachment] = ics.attachments
    assert attachment.mimetype == "text/calendar"
    [event] = icalendar.Calendar.from_ical(attachment.data).walk("VEVENT")
    assert str(event["exdate"].to_ical().decode()) == "20261130T100000"
    starts = expand(attachment.data, START, START + timedelta(days=400))
    assert MEETING not in starts
    assert MEETING + timedelta(days=7) in starts
    # Summer time: 10:00 CEST is 08:00 UTC.
    assert datetime(2027, 6, 7, 8, 0, tzinfo=UTC) in starts
    async with database.transaction() as session:
        from sqlalchemy import text

        rows = await session.execute(
            text("SELECT actor, action, target FROM audit_log WHERE action LIKE 'meeting.%'")
        )
        assert [tuple(r) for r in rows.all()] == [(LIAISON, "meeting.skip", "meeting:weekly")]


async def test_move_refuses_the_past_and_moves_the_reminders(database: Database) -> None:
    chat = meeting_chat(database)
    past = await chat.say(LIAISON, "!meeting move weekly 2026-11-30 to 2026-11-20 10:00")
    assert past.severity is Severity.ERROR and "into the past" in text_of(past)
    reply = await chat.say(
        LIAISON, '!meeting move weekly 2026-11-30 to 2026-12-01 14:00 reason="minister away"'
    )
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    assert reply.title == (
        "Moved the weekly meeting of Mon 30 Nov 2026 10:00 to Tue 01 Dec 2026 14:00"
    )
    moved = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    chat.now = MEETING - timedelta(days=1)
    assert await run_meetings(chat) == []
    chat.now = moved - timedelta(days=1)
    [reminder] = await run_meetings(chat)
    assert isinstance(reminder, Reminder) and reminder.due.occurrence.at == moved
    assert "Moved from Mon 30 Nov 2026 10:00: minister away" in text_of(
        meeting_announcements(reminder, BRUSSELS)[0].reply
    )
    listed = text_of(await chat.say(POLICE, "!meeting list"))
    assert "weekly: every Monday at 10:00 | room coordination" in listed


# --- agendas -------------------------------------------------------------------------------


async def open_event(chat: Chat, title: str, start: str, end: str) -> str:
    reply = await chat.say(LIAISON, f'!dossier open event "{title}" start="{start}" end="{end}"')
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    return reply.title.removeprefix("Opened ")


async def test_weekly_agenda_holds_exactly_the_dossiers_in_its_window(database: Database) -> None:
    chat = meeting_chat(database)
    # Window of the meeting on Mon 30 Nov 10:00: the calendar weeks before and after it,
    # Mon 23 Nov 00:00 to Sun 13 Dec 23:59, in local time.
    inside_past = await open_event(chat, "Edge past", "2026-11-20 10:00", "2026-11-23 00:30")
    outside_past = await open_event(chat, "Day before", "2026-11-19 10:00", "2026-11-22 23:30")
    inside_future = await open_event(chat, "Edge future", "2026-12-13 23:30", "2026-12-15 12:00")
    outside_future = await open_event(chat, "Day after", "2026-12-14 00:30", "2026-12-15 12:00")
    spanning = await open_event(chat, "Spanning", "2026-11-01 10:00", "2026-12-31 12:00")
    await chat.say(LIAISON, '!dossier open person "No period"')
    await chat.say(ANALYST, f"!threat log {spanning} level=3 source=OCAD credible threat")
    proposal = await chat.say(LIAISON, f"!measure propose {spanning} patrol visit programme")
    assert proposal.severity is Severity.SUCCESS, text_of(proposal)

    reply = await chat.say(POLICE, '!agenda weekly week="2026-11-30 10:00"')
    body = text_of(reply)
    assert reply.title == "Weekly agenda — Mon 23 Nov 2026 00:00 to Sun 13 Dec 2026 end of day"
    for ref in (inside_past, inside_future, spanning):
        assert ref in body
    for ref in (outside_past, outside_future):
        assert ref not in body
    assert "No period" not in body
    assert "M-1 patrol [proposed]" in body
    assert f"{spanning} Spanning: 3 SERIOUS / ERNSTIG / GRAVE (new), OCAD" in body
    assert "P-1: new M-1: patrol" in body
    assert "■ Early-warning reports\n  (nothing)" in body

    # Without a meeting: the weeks around today, Wednesday 25 November.
    today = await chat.say(POLICE, "!agenda weekly")
    assert today.title == "Weekly agenda — Mon 16 Nov 2026 00:00 to Sun 06 Dec 2026 end of day"
    assert outside_past in text_of(today) and outside_future not in text_of(today)

    # The reminder carries the same agenda, built when it is posted.
    chat.now = MEETING - timedelta(days=1)
    [reminder] = await run_meetings(chat)
    posted = text_of(meeting_announcements(reminder, BRUSSELS)[0].reply)
    assert inside_past in posted and outside_past not in posted


async def test_monthly_agenda_flags_the_seeded_cases(database: Database) -> None:
    chat = meeting_chat(database)
    await seed_measures(database, START, 28, per_dossier=4)
    async with chat.workflow() as workflow:
        agenda = await workflow.agenda.monthly(START)
    reviews = {r.line.measure.id: r for _, group in agenda.groups for r in group.__iter__()}
    assert sorted(reviews) == list(range(1, 29))
    # Dossier 5 (measures 17-20): assessment past its review date.
    assert Flag.REVIEW_OVERDUE in reviews[17].flags
    # Dossier 7 (measures 25-28): measures but no assessment.
    assert Flag.NO_ASSESSMENT in reviews[25].flags and Flag.REVIEW_OVERDUE not in reviews[25].flags
    assert (Flag.ENDING_SOON in reviews[22].flags) and Flag.ENDING_SOON not in reviews[21].flags
    assert (
        Flag.NOT_ACKNOWLEDGED in reviews[3].flags and Flag.NOT_ACKNOWLEDGED not in reviews[4].flags
    )
    assert reviews[1].flags == ()
    kinds = [kind.value for kind, _ in agenda.groups]
    assert kinds == ["person", "institution", "event"]
    reply = await chat.say(POLICE, "!agenda monthly")
    body = text_of(reply)
    assert reply.title.startswith("Ambassades review — November 2026, 28 measures in force")
    assert "!measure extend M-n" in body
    line_17 = next(line for line in reply.lines if line.startswith("  M-17 "))
    assert "⚑ assessment past its review date" in line_17


async def test_monthly_agenda_of_2000_measures_is_complete_and_split(database: Database) -> None:
    seeded = await seed_measures(database, START, 2000)
    chat = meeting_chat(database)
    reply = await chat.say(POLICE, "!agenda monthly")
    parts: list[Reply] = [reply, *(a.reply for a in reply.also)]
    assert len(parts) > 1
    assert all(isinstance(a, Announcement) and a.room == "!coordination" for a in reply.also)
    seen: list[int] = []
    for part in parts:
        # Under the event size limit even once encrypted (base64 grows it by a third).
        assert len(json.dumps(notice(part))) * 4 / 3 + 2000 < 65536
        seen += [int(m) for m in re.findall(r"^  M-(\d+) ", "\n".join(part.lines), re.M)]
    assert sorted(seen) == seeded.in_force  # each exactly once, and none that ended
    [attachment] = reply.attachments
    assert attachment.filename.endswith(".md") and attachment.mimetype == "text/markdown"
    document = attachment.data.decode()
    listed = [int(m) for m in re.findall(r"^- M-(\d+) ", document, re.M)]
    assert sorted(listed) == seeded.in_force
    assert len(re.findall(r"!measure maintain M-\d+ ", document)) == 2000


async def test_daily_digest(database: Database) -> None:
    chat = meeting_chat(database)
    old = await open_event(chat, "Old business", "2026-12-20 10:00", "2026-12-21 18:00")
    chat.advance(hours=25)  # Thu 26 Nov 10:00 UTC
    ref = await open_event(chat, "Summit", "2026-11-26 10:00", "2026-11-27 18:00")
    await chat.say(ANALYST, f"!threat log {ref} level=2 source=OCAD review=tomorrow routine")
    await chat.say(LIAISON, f'!measure propose {ref} patrol end="2026-11-27 18:00" summit')
    await chat.posted("prompt:P-1", "$prompt-P-1")
    approved = await chat.react(MINA, "$prompt-P-1")
    assert approved.decision is not None
    await chat.say(LIAISON, f'!measure propose {ref} checks end="2026-11-27 18:00" more')
    chat.advance(hours=2)
    body = text_of(await chat.say(POLICE, "!agenda daily"))
    changes, due, pending, orders = body.split("■ ")[1:]
    assert body.startswith("Daily digest — Thu 26 Nov 2026 13:00")
    assert f"{ref} [opened] event dossier opened: Summit" in changes and old not in changes
    ending = f"M-1 patrol for {ref} Summit: end Fri 27 Nov 2026 18:00"
    # review=tomorrow: a date without a time, so a deadline at the end of that day.
    assert ending in due and f"{ref} Summit: assessment review Fri 27 Nov 2026 end of day" in due
    assert "P-2: new M-2: checks" in pending and "P-1" not in pending
    assert ending in orders and "M-2" not in orders
    await chat.say(POLICE, "!measure ack M-1")
    orders = text_of(await chat.say(POLICE, "!agenda daily")).split("■ ")[4]
    assert orders.endswith("(nothing)")


async def test_calendar_feed_needs_the_token_and_shows_skips(database: Database) -> None:
    chat = meeting_chat(database)
    await chat.say(LIAISON, "!meeting skip weekly 2026-12-07 holiday")
    token = "s3cret-calendar-token"
    feed = CalendarFeed(
        database,
        lambda s: Workflow(Store(s), chat.now, chat.access, RuntimeInfo("t", START), chat.policy),
        token,
    )
    server = WebServer([feed])
    port = await server.start("127.0.0.1:0")
    url = f"http://127.0.0.1:{port}/calendar.ics"
    try:
        async with aiohttp.ClientSession() as http:
            for params, headers in (({}, {}), ({"token": "wrong"}, {})):
                async with http.get(url, params=params, headers=headers) as response:
                    assert response.status == 401
            async with http.get(url, params={"token": token, "agenda": "yearly"}) as response:
                assert response.status == 400
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
                assert response.content_type == "text/calendar"
                data = await response.read()
    finally:
        await server.stop()
    starts = expand(data, START, START + timedelta(days=30))
    assert MEETING in starts and MEETING + timedelta(days=7) not in starts
    assert MEETING + timedelta(days=14) in starts


# --- the calendar, as a calendar app reads it ----------------------------------------------


def expand(data: bytes, start: datetime, end: datetime) -> dict[datetime, icalendar.Event]:
    """Each occurrence the feed puts in [start, end] (UTC), with the event describing it:
    every VEVENT's rule less its EXDATEs, then the RECURRENCE-ID overrides in its place."""
    found: dict[datetime, icalendar.Event] = {}
    events = icalendar.Calendar.from_ical(data).walk("VEVENT")
    for event in events:
        if "recurrence-id" in event:
            continue
        rules = rruleset()
        rules.rrule(rrulestr(event["rrule"].to_ical().decode(), dtstart=event.decoded("dtstart")))
        excluded = event.get("exdate", [])
        for listed in excluded if isinstance(excluded, list) else [excluded]:
            for moment in listed.dts:
                rules.exdate(moment.dt)
        for moment in rules.between(start, end, inc=True):
            found[moment.astimezone(UTC)] = event
    for event in events:
        if "recurrence-id" in event:
            found.pop(event.decoded("recurrence-id").astimezone(UTC), None)
            moment = event.decoded("dtstart").astimezone(UTC)
            if start <= moment <= end:
                found[moment] = event
    return found


async def test_calendar_has_one_recurring_event_per_meeting_in_local_time(
    database: Database,
) -> None:
    monthly = MeetingSpec(
        "ambassades",
        "FREQ=MONTHLY;BYDAY=1TU;BYHOUR=14;BYMINUTE=0",
        "operations",
        AgendaKind.MONTHLY,
        (timedelta(days=1),),
        "!ops:aegis.test",
    )
    weekly = dataclasses.replace(WEEKLY, address="#coordination:aegis.test")
    chat = meeting_chat(database, weekly, monthly)
    await chat.say(LIAISON, "!meeting skip weekly 2026-12-07 holiday")
    moved = await chat.say(
        LIAISON, '!meeting move weekly 2026-12-14 to 2026-12-15 14:00 reason="minister away"'
    )
    assert moved.severity is Severity.SUCCESS, text_of(moved)
    # The next meeting's agenda, posted with its 1h reminder.
    chat.now = MEETING - timedelta(hours=1)
    [reminder] = await run_meetings(chat)
    assert isinstance(reminder, Reminder) and reminder.due.occurrence.at == MEETING
    ref = agenda_ref(reminder.due.occurrence, timedelta(hours=1))
    await chat.posted(ref, "$agenda", "!coordination")
    async with chat.workflow() as workflow:
        data = calendar(await workflow.meetings.series(), chat.now, BRUSSELS, "Aegis")
    parsed = icalendar.Calendar.from_ical(data)
    assert [tz["tzid"] for tz in parsed.walk("VTIMEZONE")] == ["Europe/Brussels"]
    events = parsed.walk("VEVENT")
    series = {str(e["summary"]): e for e in events if "recurrence-id" not in e}
    assert sorted(series) == [
        "ambassades meeting (monthly agenda)",
        "weekly meeting (weekly agenda)",
    ]
    for event in events:
        assert event["dtstart"].params["TZID"] == "Europe/Brussels"
    week = series["weekly meeting (weekly agenda)"]
    assert week["location"] == "https://matrix.to/#/#coordination:aegis.test"
    assert "The weekly agenda: events and visits of the past and coming week" in week["description"]
    assert "!agenda weekly" in week["description"]
    assert series["ambassades meeting (monthly agenda)"]["location"] == (
        "https://matrix.to/#/!ops:aegis.test"
    )
    posted, moved_away = [e for e in events if "recurrence-id" in e]
    assert posted["uid"] == moved_away["uid"] == week["uid"]
    assert posted.decoded("recurrence-id") == posted.decoded("dtstart") == MEETING
    assert posted["description"].startswith(
        "Agenda: https://matrix.to/#/!coordination/$agenda\n\nThe weekly agenda:"
    )
    assert moved_away["description"].startswith("Moved: minister away\n\nThe weekly agenda:")

    found = expand(data, START, datetime(2027, 1, 31, tzinfo=UTC))
    weekly_starts = sorted(m for m, e in found.items() if e["uid"] == week["uid"])
    assert weekly_starts == [
        MEETING,  # Mon 30 Nov 10:00 CET
        datetime(2026, 12, 15, 13, 0, tzinfo=UTC),  # moved from Mon 14 Dec to Tue 15 Dec 14:00
        datetime(2026, 12, 21, 9, 0, tzinfo=UTC),  # Mon 7 Dec skipped
        datetime(2026, 12, 28, 9, 0, tzinfo=UTC),
        *(datetime(2027, 1, day, 9, 0, tzinfo=UTC) for day in (4, 11, 18, 25)),
    ]
    monthly_starts = sorted(m for m, e in found.items() if e["uid"] != week["uid"])
    # The first Tuesday, 14:00 local: 1 December 2026 and 5 January 2027.
    assert monthly_starts == [
        datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
        datetime(2027, 1, 5, 13, 0, tzinfo=UTC),
    ]
    # Summer time: still 14:00 local, 12:00 UTC.
    summer = expand(data, datetime(2027, 7, 1, tzinfo=UTC), datetime(2027, 7, 31, tzinfo=UTC))
    assert datetime(2027, 7, 6, 12, 0, tzinfo=UTC) in summer


async def test_an_empty_calendar_is_a_message(database: Database) -> None:
    chat = Chat(database, ROLES, policy=Policy(timezone=BRUSSELS))
    reply = await chat.say(POLICE, "!agenda weekly format=ics")
    assert reply.attachments == ()
    assert reply.title == "No weekly meetings are configured"
    feed = CalendarFeed(
        database,
        lambda s: Workflow(Store(s), chat.now, chat.access, RuntimeInfo("t", START), chat.policy),
        "s3cret-calendar-token",
    )
    server = WebServer([feed])
    port = await server.start("127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/calendar.ics"
            async with http.get(url, params={"token": "s3cret-calendar-token"}) as response:
                assert response.status == 404
                assert response.content_type == "text/plain"
                assert (await response.text()).startswith("No meetings are configured.")
    finally:
        await server.stop()


def test_meeting_list_describes_recurrences_in_words() -> None:
    cases = {
        "FREQ=WEEKLY;BYDAY=TU;BYHOUR=10;BYMINUTE=0": "every Tuesday at 10:00",
        "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=14;BYMINUTE=0": "every first Monday of the month at 14:00",
        "FREQ=DAILY;BYHOUR=8;BYMINUTE=30": "every day at 08:30",
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;BYHOUR=9": "every last Friday of the month at 09:00",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;BYHOUR=10": "every other Monday and Thursday at 10:00",
        "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=15": (
            "every weekday (Monday to Friday) at 08:15"
        ),
        "FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=9": "on the 1st and 15th of the month at 09:00",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=FR;BYHOUR=11": "every 3 weeks on Friday at 11:00",
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9,14;BYMINUTE=0,30": (
            "every Monday at 09:00, 09:30, 14:00 and 14:30"
        ),
        # Shapes without their own words still read as words, never as the rule.
        "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=2": "on its own yearly schedule",
        "FREQ=WEEKLY;BYDAY=MO;COUNT=3": "on its own weekly schedule",
    }
    assert {rule: describe(rule) for rule in cases} == cases


# --- configuration -------------------------------------------------------------------------


def test_bad_meeting_configuration_names_each_key() -> None:
    rooms = {k: f"!{k}:example.org" for k in RoomKey}
    with pytest.raises(ValidationError) as raised:
        Settings(
            matrix={
                "homeserver": "https://m.example.org",
                "user_id": "@a:example.org",
                "password": "x",
            },
            rooms=rooms,
            http={"token": "too-short"},
            meetings={
                "weekly": {
                    "rrule": "FREQ=WEEKLY;BYDAY=XX",
                    "room": "lobby",
                    "agenda": "yearly",
                    "remind_before": ["1d", "soon"],
                }
            },
        )
    where = {".".join(str(p) for p in e["loc"]) for e in raised.value.errors()}
    assert where == {
        "http.token",
        "meetings.weekly.rrule",
        "meetings.weekly.room",
        "meetings.weekly.agenda",
        "meetings.weekly.remind_before.1",
    }


async def test_a_long_agenda_in_a_reminder_also_comes_as_a_file(database: Database) -> None:
    seeded = await seed_measures(database, START, 2000)
    monthly = MeetingSpec(
        "ambassades",
        "FREQ=MONTHLY;BYDAY=1TU;BYHOUR=14;BYMINUTE=0",
        "coordination",
        AgendaKind.MONTHLY,
        (timedelta(days=1),),
    )
    # The first Tuesday of December 2026 is the 1st; the 1d reminder falls on 30 Nov 14:00.
    chat = meeting_chat(database, monthly, now=datetime(2026, 11, 30, 13, 0, 30, tzinfo=UTC))
    [reminder] = await run_meetings(chat)
    assert isinstance(reminder, Reminder)
    announcements = meeting_announcements(reminder, BRUSSELS)
    assert len(announcements) > 1 and announcements[0].ref is not None
    assert all(not a.reply.attachments for a in announcements[:-1])
    [whole] = announcements[-1].reply.attachments
    assert whole.filename.endswith(".md") and whole.mimetype == "text/markdown"
    listed = [int(m) for m in re.findall(r"^- M-(\d+) ", whole.data.decode(), re.M)]
    assert sorted(listed) == seeded.in_force
