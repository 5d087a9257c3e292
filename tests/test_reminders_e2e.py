"""Personal reminders against the real homeserver, on the real clock, on both databases: a
reminder set with `!remind me in 20 seconds …` survives a SIGKILL of the bot before it falls
due, is posted exactly once after the restart, in the room where it was set, mentioning the
user (m.mentions and a pill), and is not posted again after another crash.

Twenty seconds leave ample room for the kill, which follows the bot's answer at once, and
the restart takes seconds: whether the reminder falls due while the bot is down or just
after it is back, it was set before the crash and must be posted once after it."""

from __future__ import annotations

from pathlib import Path

import nio

from tests.support.bot_runner import BotProcess
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World

WAIT = 60.0
# Due 20 s after it is set; the scheduler sleeps until then; a restart takes seconds.
FIRE_WAIT = 180.0


def body(event: nio.Event) -> str:
    return str(content(event).get("body", ""))


async def ask(user: MatrixUser, room: str, text: str) -> str:
    """The bot's answer to a command: sent after everything the bot queued before it."""
    return body(await user.reply_to(room, await user.say(room, text), WAIT))


async def test_a_reminder_set_before_a_crash_is_posted_once_after_the_restart(
    world: World, tmp_path: Path
) -> None:
    room, user, bot_id = world.coordination, world.admin, world.setup.user_id
    config = world.setup.write_config()
    bot = BotProcess(config, tmp_path / "bot.log")

    def reminders() -> list[nio.Event]:
        return [
            e
            for e in user.events(room)
            if e.sender == bot_id and "Reminder: call the embassy back" in body(e)
        ]

    try:
        bot.start()
        await user.wait_for_member(room, bot_id, timeout=WAIT)
        answer = await ask(user, room, "!remind me in 20 seconds call the embassy back")
        assert "Reminder RM-1 set for you" in answer, answer
        bot.kill()
        assert reminders() == []

        bot.start()
        posted = await user.wait_for(
            room,
            lambda e: e.sender == bot_id and "Reminder: call the embassy back" in body(e),
            FIRE_WAIT,
        )
        said = content(posted)
        assert said["m.mentions"] == {"user_ids": [user.user_id]}
        # The title first, as a notification shows it; the mention's name after it.
        assert body(posted).startswith("Reminder: call the embassy back")
        pill = f'href="https://matrix.to/#/{user.user_id.replace("@", "%40").replace(":", "%3A")}"'
        assert pill in said["formatted_body"]
        assert "Reminder: RM-1" in body(posted)

        # Done in storage, so another crash and restart posts nothing more.
        bot.kill()
        bot.start()
        listing = await ask(user, room, "!remind list")
        assert "You have no pending reminders in this room" in listing, listing
        assert len(reminders()) == 1
        assert bot.terminate() == 0
    finally:
        bot.kill()
