"""Issue 12 against the real homeserver, on the real clock: a meeting step is posted within
2 s of its due time, by the scheduler's timer, not at a tick; and a command that moves a
meeting wakes the scheduler, so the moved occurrence is on time as well.

Timing is read from the homeserver's own stamp on the bot's message (origin_server_ts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nio

from storage.db import Database
from storage.store import Store
from tests.support.bot_runner import InProcessBot
from tests.support.world import World
from tests.test_meetings_e2e import BRUSSELS, WAIT, body, weekly_at

ON_TIME = timedelta(seconds=2)


def posted_at(event: nio.Event) -> datetime:
    return datetime.fromtimestamp(event.server_timestamp / 1000, UTC)


async def moved_to(world: World, meeting: str) -> datetime:
    """Where the move put the occurrence, to the microsecond, as the bot stored it."""
    db = Database(world.setup.database_url)
    try:
        async with db.snapshot() as session:
            [change] = await Store(session).meetings.changes(meeting)
    finally:
        await db.close()
    assert change.moved_to is not None
    return change.moved_to


async def test_meeting_steps_are_posted_within_2_seconds_of_their_time(world: World) -> None:
    room, reader = world.coordination, world.admin
    due = (datetime.now(UTC) + timedelta(seconds=25)).replace(microsecond=0)
    later = due + timedelta(days=3)
    config = world.setup.write_config(
        meetings={
            "flash": {"rrule": weekly_at(due), "remind_before": []},
            "later": {"rrule": weekly_at(later), "remind_before": []},
        }
    )

    def starting(name: str) -> object:
        return lambda e: (
            e.sender == world.setup.user_id and f"The {name} meeting is starting" in (body(e))
        )

    bot = InProcessBot(config)
    await bot.start()
    try:
        await bot.ready(timeout=WAIT)
        await reader.wait_for_member(room, world.setup.user_id, timeout=WAIT)
        assert datetime.now(UTC) < due - ON_TIME, "the bot took too long to start"
        # Asleep until the step is due: nothing but the timer can post it on time.
        post = await reader.wait_for(room, starting("flash"), WAIT)
        assert timedelta(0) <= posted_at(post) - due <= ON_TIME, (posted_at(post), due)

        # Moved to a few seconds from now: the command wakes the sleeping scheduler, whose
        # timer was set for a minute (nothing else due in the coming days).
        day = later.astimezone(BRUSSELS).strftime("%Y-%m-%d")
        command = await reader.say(room, f"!meeting move later {day} to in 6 seconds")
        reply = await reader.reply_to(room, command, WAIT)
        assert "Moved the later meeting" in body(reply), body(reply)
        target = await moved_to(world, "later")
        post = await reader.wait_for(room, starting("later"), WAIT)
        assert timedelta(0) <= posted_at(post) - target <= ON_TIME, (posted_at(post), target)
    finally:
        await bot.stop()
