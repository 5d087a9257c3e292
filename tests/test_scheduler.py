"""The scheduler on time, under a fixed clock (SQLite and PostgreSQL): each rule set's next
due step, the sleep until the earliest of them, a wake after a change, and a meeting's first
start that reports nothing older than the meeting as missed."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.scheduler import LONGEST_SLEEP, Scheduler, sleep_for
from storage.db import Database
from tests.support.chat import BRUSSELS
from tests.test_measures import LIAISON, dossier, make_chat, propose
from tests.test_meetings import MEETING, WEEKLY, meeting_chat, run_meetings
from tests.test_observability import MovableClock
from tests.test_pipeline import make_pipeline
from workflow import Policy
from workflow.meetings import Starting

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "now", "seconds"),
    [
        ([NOW + timedelta(seconds=3), NOW + timedelta(seconds=9)], NOW, 3.0),
        ([None, NOW + timedelta(seconds=9)], NOW, 9.0),
        ([None, None], NOW, LONGEST_SLEEP),
        ([NOW + timedelta(hours=5)], NOW, LONGEST_SLEEP),
        # Due at or before the pass: that pass had it; not a reason to spin.
        ([NOW, NOW - timedelta(seconds=1)], NOW, LONGEST_SLEEP),
        # Fell due while the pass ran: no sleep at all.
        ([NOW + timedelta(seconds=1)], NOW + timedelta(seconds=2), 0.0),
        # The pass took a second: a second less to wait.
        ([NOW + timedelta(seconds=5)], NOW + timedelta(seconds=1), 4.0),
    ],
)
def test_sleep_until_the_earliest_step_after_the_pass(
    due: list[datetime | None], now: datetime, seconds: float
) -> None:
    assert sleep_for(NOW, due, now) == seconds


def meeting_scheduler(database: Database, clock: MovableClock) -> Scheduler:
    pipeline = dataclasses.replace(
        make_pipeline(database, []),
        policy=Policy(timezone=BRUSSELS, meetings=(WEEKLY,)),
        clock=clock,
    )
    return Scheduler(pipeline, asyncio.Event())


async def test_the_scheduler_sleeps_until_the_next_meeting_step(database: Database) -> None:
    clock = MovableClock(MEETING - timedelta(days=1, seconds=50))
    scheduler = meeting_scheduler(database, clock)
    assert await scheduler.tick() == 0  # the meeting's first sighting, nothing to post
    assert await scheduler.pause(clock.now()) == 50.0  # the 1d reminder

    clock.moment = MEETING - timedelta(days=1)
    assert await scheduler.tick() == 1
    assert await scheduler.pause(clock.now()) == LONGEST_SLEEP  # the 1h one is 23 h away

    clock.moment = MEETING - timedelta(hours=1, seconds=7)
    assert await scheduler.pause(clock.now()) == 7.0
    clock.moment = MEETING - timedelta(hours=1)
    assert await scheduler.tick() == 1
    clock.moment = MEETING - timedelta(seconds=2.5)
    assert await scheduler.pause(clock.now()) == 2.5  # "starting now"
    clock.moment = MEETING
    assert await scheduler.tick() == 1
    # The next occurrence is a week later: its 1d reminder six days on.
    async with database.snapshot() as session:
        workflow = scheduler.pipeline.workflow(session)
        assert await workflow.meetings.next_due() == MEETING + timedelta(days=6)


async def test_next_due_skips_a_skipped_occurrence_and_follows_a_moved_one(
    database: Database,
) -> None:
    chat = meeting_chat(database, now=MEETING - timedelta(days=3))
    assert await run_meetings(chat) == []  # first sighting
    await chat.say(LIAISON, "!meeting skip weekly 2026-11-30 holiday")
    async with chat.workflow() as workflow:
        assert await workflow.meetings.next_due() == MEETING + timedelta(days=6)
    await chat.say(LIAISON, "!meeting move weekly 2026-12-07 to 2026-12-02 16:30")
    async with chat.workflow() as workflow:
        # 16:30 CET on Wednesday 2 December is 15:30 UTC; a day before.
        assert await workflow.meetings.next_due() == datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


async def test_next_due_of_a_proposal_and_a_measure(database: Database) -> None:
    chat = make_chat(database)
    ref = await dossier(chat)
    created = chat.now
    async with chat.workflow() as workflow:
        assert await workflow.schedule.next_due() is None
    await propose(chat, ref)
    async with chat.workflow() as workflow:
        assert await workflow.schedule.next_due() == created + timedelta(hours=4)  # nudge
    chat.advance(hours=5)
    async with chat.workflow() as workflow:
        assert await workflow.schedule.next_due() == created + timedelta(hours=8)  # next nudge
    chat.advance(hours=66)
    async with chat.workflow() as workflow:
        assert await workflow.schedule.next_due() == created + timedelta(hours=72)  # expiry


class Observed(Scheduler):
    """Tells when it goes to sleep, and for how long."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler.pipeline, scheduler.stop)
        self.sleeps: asyncio.Queue[float] = asyncio.Queue()

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.put_nowait(seconds)
        await super()._sleep(seconds)


async def test_a_change_wakes_the_sleeping_scheduler(database: Database) -> None:
    clock = MovableClock(MEETING - timedelta(days=2))
    sent = asyncio.Event()
    base = meeting_scheduler(database, clock)
    base.pipeline = dataclasses.replace(base.pipeline, wake_sender=sent.set)
    scheduler = Observed(base)
    task = asyncio.create_task(scheduler.run())
    try:
        # Asleep for the longest time: the next step is a day away.
        assert await asyncio.wait_for(scheduler.sleeps.get(), 10) == LONGEST_SLEEP
        clock.moment = MEETING - timedelta(days=1)
        scheduler.wake()
        await asyncio.wait_for(sent.wait(), 10)  # well before the minute is up
    finally:
        scheduler.stop.set()
        await task
    async with database.snapshot() as session:
        workflow = scheduler.pipeline.workflow(session)
        assert await workflow.meetings.next_due() == MEETING - timedelta(hours=1)


async def test_a_first_start_after_an_occurrence_reports_nothing_missed(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # First seen three minutes into the meeting: its reminders and its start are older
    # than the meeting's configuration, so neither posted nor reported as dropped.
    chat = meeting_chat(database, now=MEETING + timedelta(minutes=3))
    with caplog.at_level(logging.WARNING):
        assert await run_meetings(chat) == []
        assert await run_meetings(chat) == []
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
    # The next occurrence is the bot's: missed while it is down, it is reported.
    chat.now = MEETING + timedelta(days=7, minutes=3)
    with caplog.at_level(logging.WARNING):
        outcomes = await run_meetings(chat)
    assert [type(o) for o in outcomes] == [Starting]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and "/1h dropped: the meeting already started" in dropped[0]
