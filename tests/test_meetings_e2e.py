"""Issue 5's acceptance against the real homeserver: under a controllable clock the weekly
meeting's 1d and 1h reminders arrive in the configured room at the right local times,
carrying an agenda with exactly the dossiers in its window, and "starting now" links to it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
import nio
from dateutil.rrule import rrulestr

from tests.support.bot_runner import BotProcess, FakeClock, InProcessBot
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World
from tests.test_meetings import expand
from workflow.meetings import LATE_AFTER

WAIT = 60.0
BRUSSELS = ZoneInfo("Europe/Brussels")


def body(event: nio.Event) -> str:
    return str(content(event).get("body", ""))


async def barrier(user: MatrixUser, room: str) -> None:
    """The bot sends a room's outbox in order: once this answer is in, so is all before it."""
    event_id = await user.say(room, "!ping barrier")
    await user.reply_to(room, event_id, WAIT)


def from_bot(world: World, user: MatrixUser, room: str, text: str) -> list[nio.Event]:
    return [
        e
        for e in user.events(room)
        if not isinstance(e, nio.MegolmEvent)
        and e.sender == world.setup.user_id
        and text in body(e)
    ]


async def test_weekly_reminders_arrive_in_the_right_room_at_local_times(world: World) -> None:
    clock = FakeClock()
    # A weekly meeting three days ahead, at 10:00 local time.
    day = (clock.now().astimezone(BRUSSELS) + timedelta(days=3)).strftime("%a")[:2].upper()
    rule = f"FREQ=WEEKLY;BYDAY={day};BYHOUR=10;BYMINUTE=0;BYSECOND=0"
    anchor = clock.now().astimezone(BRUSSELS)
    meeting = rrulestr(rule, dtstart=anchor.replace(hour=0, minute=0, second=0, microsecond=0))
    start = meeting.after(anchor)
    assert start is not None and start.hour == 10
    token = "calendar-token-0123456789"
    config = world.setup.write_config(
        meetings={"weekly": {"rrule": rule, "room": "operations", "remind_before": ["1d", "1h"]}},
        http={"listen": "127.0.0.1:0", "token": token},
    )
    operations, coordination = world.setup.rooms["operations"], world.coordination
    reader = world.admin

    def local(days: int = 0, hours: int = 0, minutes: int = 0) -> str:
        return (start - timedelta(days=days, hours=hours, minutes=minutes)).strftime("%d %H:%M")

    # Dossiers just inside the agenda's window and just outside each edge. The window runs
    # from Monday 00:00 of the calendar week before the meeting's to Sunday 23:59 of the
    # week after, local time.
    monday = start.date() - timedelta(days=start.weekday())
    window_start = datetime.combine(monday - timedelta(days=7), time(0), tzinfo=BRUSSELS)
    window_end = datetime.combine(monday + timedelta(days=14), time(0), tzinfo=BRUSSELS)

    def at(edge: datetime, minutes: int) -> str:
        return (edge + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")

    bot = InProcessBot(config, clock)
    await bot.start()
    await bot.ready(timeout=WAIT)
    for key in ("coordination", "operations"):
        await reader.wait_for_member(world.setup.rooms[key], world.setup.user_id)
    try:
        refs = {}
        for title, begin, end in (
            ("Edge past", at(window_start, -3000), at(window_start, 30)),
            ("Day before", at(window_start, -3000), at(window_start, -30)),
            ("Edge future", at(window_end, -30), at(window_end, 3000)),
            ("Day after", at(window_end, 30), at(window_end, 3000)),
        ):
            event_id = await world.alice.say(
                coordination, f'!dossier open event "{title}" start="{begin}" end="{end}"'
            )
            reply = await world.alice.reply_to(coordination, event_id, WAIT)
            refs[title] = body(reply).split()[2]

        async def tick() -> None:
            for _ in range(200):
                if bot.app.scheduler is not None:
                    break
                await asyncio.sleep(0.05)
            assert bot.app.scheduler is not None
            await bot.app.scheduler.tick()
            await barrier(reader, operations)
            await barrier(reader, coordination)

        clock.moment = (start - timedelta(days=1, minutes=1)).astimezone(UTC)
        await tick()
        assert not from_bot(world, reader, operations, "Reminder: weekly")

        clock.advance(minutes=1)
        await tick()
        [day_before] = from_bot(world, reader, operations, "Reminder: weekly meeting")
        assert clock.now().astimezone(BRUSSELS).strftime("%d %H:%M") == local(days=1)
        assert f"{start:%a %d %b %Y} 10:00 (in 1d)" in body(day_before)
        assert not from_bot(world, reader, coordination, "Reminder: weekly")
        agenda = body(day_before)
        assert refs["Edge past"] in agenda and refs["Edge future"] in agenda
        assert refs["Day before"] not in agenda and refs["Day after"] not in agenda
        assert "LATE" not in agenda

        clock.moment = (start - timedelta(hours=1, minutes=1)).astimezone(UTC)
        await tick()
        assert len(from_bot(world, reader, operations, "Reminder: weekly meeting")) == 1
        clock.advance(minutes=1)
        await tick()
        reminders = from_bot(world, reader, operations, "Reminder: weekly meeting")
        assert len(reminders) == 2 and "(in 1h)" in body(reminders[1])
        assert clock.now().astimezone(BRUSSELS).strftime("%d %H:%M") == local(hours=1)
        assert "09:00" in local(hours=1)

        clock.moment = start.astimezone(UTC)
        await tick()
        [starting] = from_bot(world, reader, operations, "starting now")
        assert reminders[1].event_id in body(starting)  # the link to the 1h agenda
        await tick()
        assert len(from_bot(world, reader, operations, "Reminder: weekly meeting")) == 2
        assert len(from_bot(world, reader, operations, "starting now")) == 1

        # The calendar feed, as a member's calendar app subscribes to it.
        assert bot.app.web is not None
        url = f"http://127.0.0.1:{bot.app.web.port}/calendar.ics"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as refused:
                assert refused.status == 401
            async with http.get(url, params={"token": token}) as response:
                feed = await response.read()
        events = icalendar.Calendar.from_ical(feed).walk("VEVENT")
        assert {str(e["location"]) for e in events} == {f"https://matrix.to/#/{operations}"}
        [series] = [e for e in events if "recurrence-id" not in e]
        starts = expand(feed, clock.now() - timedelta(days=1), clock.now() + timedelta(days=30))
        assert start.astimezone(UTC) in starts and "RRULE" in series.to_ical().decode()
        # This meeting's entry links the agenda posted with its 1h reminder.
        agenda = f"Agenda: https://matrix.to/#/{operations}/{reminders[1].event_id}"
        assert str(starts[start.astimezone(UTC)]["description"]).startswith(agenda)
    finally:
        await bot.stop()


async def test_restart_posts_a_missed_reminder_once_marked_late_or_not_after_the_start(
    world: World,
) -> None:
    clock = FakeClock()
    day = (clock.now().astimezone(BRUSSELS) + timedelta(days=2)).strftime("%a")[:2].upper()
    rule = f"FREQ=WEEKLY;BYDAY={day};BYHOUR=10;BYMINUTE=0;BYSECOND=0"
    anchor = clock.now().astimezone(BRUSSELS)
    start = rrulestr(rule, dtstart=anchor.replace(hour=0, minute=0, second=0, microsecond=0))
    meeting = start.after(anchor)
    assert meeting is not None
    config = world.setup.write_config(
        meetings={"weekly": {"rrule": rule, "remind_before": ["1d", "1h"]}}
    )
    coordination, reader = world.coordination, world.admin

    async def run_bot() -> InProcessBot:
        bot = InProcessBot(config, clock)
        await bot.start()
        await bot.ready(timeout=WAIT)
        await reader.wait_for_member(coordination, world.setup.user_id)
        for _ in range(200):
            if bot.app.scheduler is not None:
                break
            await asyncio.sleep(0.05)
        return bot

    async def tick(bot: InProcessBot) -> None:
        assert bot.app.scheduler is not None
        await bot.app.scheduler.tick()
        await barrier(reader, coordination)

    def reminders() -> list[nio.Event]:
        return from_bot(world, reader, coordination, "Reminder: weekly meeting")

    # Up a minute before the 1d reminder; down before it is due; back 20 minutes late.
    clock.moment = (meeting - timedelta(days=1, minutes=1)).astimezone(UTC)
    bot = await run_bot()
    try:
        await tick(bot)
        assert reminders() == []
    finally:
        await bot.stop()
    clock.advance(minutes=21)
    bot = await run_bot()
    try:
        await tick(bot)
        await tick(bot)
        [late] = reminders()
        assert body(late).removeprefix("⚠️ ").startswith("LATE — Reminder: weekly meeting")
        # Late, it says when it was due, never "(in 1d)", which is no longer true.
        was_due = f"{meeting - timedelta(days=1):%a %d %b %Y %H:%M}"
        assert f"(was due {was_due}, posted late)" in body(late), body(late)
        assert "(in 1d)" not in body(late) and "Posted late" in body(late)
    finally:
        await bot.stop()
    # Down from before the 1h reminder until after the start: neither posted.
    clock.moment = (meeting + timedelta(minutes=30)).astimezone(UTC)
    bot = await run_bot()
    try:
        await tick(bot)
        assert len(reminders()) == 1
        assert from_bot(world, reader, coordination, "starting now") == []
    finally:
        await bot.stop()


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def weekly_at(moment: datetime) -> str:
    """A weekly rule whose occurrence this week is `moment`, to the second, in Brussels."""
    local = moment.astimezone(BRUSSELS)
    day = local.strftime("%a")[:2].upper()
    return (
        f"FREQ=WEEKLY;BYDAY={day};BYHOUR={local.hour};"
        f"BYMINUTE={local.minute};BYSECOND={local.second}"
    )


# Real minutes on the real clock, on both databases.
async def test_sigkill_before_a_reminder_posts_it_once_late_or_not_after_the_start(
    world: World, tmp_path: Path
) -> None:
    """A real crash on the real clock. Both meetings' reminders fall due at `due`, while the
    bot is down; it comes back past the late threshold, before alpha's start and after
    bravo's: alpha's reminder is posted once, marked late; bravo's never."""
    room, reader = world.coordination, world.admin
    due = (datetime.now(UTC) + timedelta(seconds=60)).replace(microsecond=0)
    alpha, bravo = due + timedelta(minutes=7), due + timedelta(minutes=1)
    config = world.setup.write_config(
        meetings={
            "alpha": {"rrule": weekly_at(alpha), "remind_before": ["7m"]},
            "bravo": {"rrule": weekly_at(bravo), "remind_before": ["1m"]},
        }
    )
    log_path = tmp_path / "bot.log"
    bot = BotProcess(config, log_path)

    def reminders(name: str) -> list[nio.Event]:
        return from_bot(world, reader, room, f"Reminder: {name} meeting")

    try:
        bot.start()
        await reader.wait_for_member(room, world.setup.user_id, timeout=WAIT)
        await barrier(reader, room)  # up and answering: its scheduler has ticked
        assert datetime.now(UTC) < due - timedelta(seconds=10), "the bot took too long to start"
        await sleep_until(due - timedelta(seconds=5))
        await barrier(reader, room)
        assert reminders("alpha") == [] and reminders("bravo") == []
        bot.kill()

        # Back once the reminder is late: after bravo's start, before alpha's. (Its first
        # pass comes later still, so a few seconds past the threshold are enough.)
        await sleep_until(due + LATE_AFTER + timedelta(seconds=5))
        assert datetime.now(UTC) < alpha - timedelta(seconds=30)
        bot.start()
        late = await reader.wait_for(
            room, lambda e: e.sender == world.setup.user_id and "alpha meeting" in body(e), WAIT
        )
        assert body(late).removeprefix("⚠️ ").startswith("LATE — Reminder: alpha meeting")
        was_due = f"{due.astimezone(BRUSSELS):%a %d %b %Y %H:%M}"
        assert f"(was due {was_due}, posted late)" in body(late), body(late)
        assert "(in 7m)" not in body(late) and "Posted late" in body(late)
        # Negative checks: a few more seconds (and ticks' worth of sends) then a barrier.
        await asyncio.sleep(5)
        await barrier(reader, room)
        assert len(reminders("alpha")) == 1
        assert reminders("bravo") == []
        assert bot.terminate() == 0
        dropped = f"reminder bravo/{bravo.isoformat()}/1m dropped: the meeting already started"
        assert dropped in log_path.read_text()
    finally:
        bot.kill()
