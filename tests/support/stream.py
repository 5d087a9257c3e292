"""Streams of numbered commands for the fault tests: sent without waiting for replies, then
every reply counted per command (by its in_reply_to), so "answered exactly once" is checked
command by command, whatever happened to the bot in between."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import nio

from tests.support.bot_runner import BotProcess
from tests.support.matrix_user import MatrixUser, content, in_reply_to
from tests.support.world import World

_TICKS = os.sysconf("SC_CLK_TCK")


async def warm_up(world: World, bot: BotProcess) -> None:
    """Started, joined, answering: only then is 'the bot was down' meaningful."""
    bot.start()
    await world.admin.wait_for_member(world.coordination, world.setup.user_id, timeout=60)
    probe = await world.alice.say(world.coordination, "!ping warm-up")
    await world.alice.reply_to(world.coordination, probe, timeout=60)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/<pid>/stat utime+stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of stat(5); the slice starts at field 3 (state).
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CommandStream:
    """`!ping <label><n>` commands from one user into one room, and the bot's replies."""

    def __init__(self, user: MatrixUser, room_id: str, bot_user_id: str, label: str) -> None:
        self.user = user
        self.room_id = room_id
        self.bot_user_id = bot_user_id
        self.label = label
        self.sent: dict[str, str] = {}  # command event ID -> the text after "pong "
        self.ahead: int | None = None  # see send()

    def text(self, n: int) -> str:
        return f"{self.label}{n:04d}"

    async def send(self, count: int, start: int = 0, in_flight: int = 1) -> None:
        """Sends as fast as the homeserver takes them, up to `in_flight` at a time and, while
        `ahead` is set, at most that many commands ahead of the replies, so the stream lasts
        as long as the bot takes to answer it. The first send (through `say`) makes sure members,
        devices and the room key are in place, so the rest go straight out. Beyond one in
        flight, the timeline order is only roughly n's."""
        numbers = iter(range(start, start + count))
        if not self.sent:
            for n in numbers:
                event_id = await self.user.say(self.room_id, f"!ping {self.text(n)}")
                self.sent[event_id] = self.text(n)
                break

        sharing = asyncio.Lock()

        async def worker() -> None:
            for n in numbers:  # shared: each number is taken by one worker
                text = self.text(n)
                # Polled: replies arrive through the user's sync, not through an event here.
                while self.ahead is not None and len(self.sent) - self.answered() > self.ahead:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                async with sharing:  # a rotated room key is shared once, as `say` does it
                    olm = self.user.client.olm
                    if olm is not None and olm.should_share_group_session(self.room_id):
                        await self.user._prepare_encryption(self.room_id)
                response = await self.user.client.room_send(
                    self.room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": f"!ping {text}"},
                    ignore_unverified_devices=True,
                )
                if not isinstance(response, nio.RoomSendResponse):
                    raise RuntimeError(f"send failed: {response}")
                self.sent[str(response.event_id)] = text

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    def replies(self) -> list[nio.Event]:
        notices = self.user.replies(self.room_id, self.bot_user_id)
        return [e for e in notices if in_reply_to(e) in self.sent]

    def answered(self) -> int:
        """How many commands have at least one reply."""
        return len({in_reply_to(e) for e in self.replies()})

    async def wait_answered(self, seconds: float, at_least: int | None = None) -> None:
        """Polls (rather than re-checking on every event) so a thousand replies stay cheap."""
        wanted = len(self.sent) if at_least is None else at_least
        deadline = time.monotonic() + seconds
        while (got := self.answered()) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.label}: {got} of {wanted} commands answered after {seconds}s "
                    f"({len(self.sent)} sent)"
                )
            await asyncio.sleep(0.2)

    def check_exactly_once(self) -> None:
        """Each command has exactly one reply, and it is the pong for that command: no
        internal error, no 'could not decrypt', nothing lost, nothing doubled."""
        replies = self.replies()
        counts = Counter(in_reply_to(e) for e in replies)
        missing = [self.sent[e] for e in self.sent if counts[e] == 0]
        doubled = {self.sent[e]: n for e, n in counts.items() if e and n > 1}
        wrong = [
            content(e).get("body", "")[:80]
            for e in replies
            if not content(e).get("body", "").startswith(f"pong {self.sent[in_reply_to(e) or '']}")
        ]
        assert not missing, f"{len(missing)} commands unanswered, e.g. {missing[:5]}"
        assert not doubled, f"{len(doubled)} commands answered twice or more: {doubled}"
        assert not wrong, f"{len(wrong)} wrong replies, e.g. {wrong[:3]}"
        assert len(replies) == len(self.sent)
