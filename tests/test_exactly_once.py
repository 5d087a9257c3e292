"""Nothing lost, nothing done twice: the bot is SIGKILLed and restarted as a real process,
and a homeserver on Synapse's default rate limits still gets every reply."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import outbox
from tests.conftest import users_on
from tests.support.bot_runner import BotProcess
from tests.support.homeserver import Homeserver
from tests.support.matrix_user import content, in_reply_to
from tests.support.stream import warm_up
from tests.support.world import World, build_world

BACKLOG = 300


async def wait_until_answered(
    world: World, room_id: str, commands: list[str], seconds: float
) -> None:
    wanted = set(commands)

    def done() -> bool:
        return wanted <= set(world.answered(room_id))

    await world.alice._wait(done, seconds, f"replies to {len(commands)} commands")


async def exempt_from_rate_limits(hs: Homeserver, user_id: str) -> None:
    password = secrets.token_urlsafe(12)
    localpart = "ratelimit-admin-" + secrets.token_hex(3)
    await hs.register(localpart, password, admin=True)
    token = await hs.login(localpart, password, "RATELIMIT")
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{hs.url}/_synapse/admin/v1/users/{user_id}/override_ratelimit",
            json={"messages_per_second": 0, "burst_count": 0},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 200, await response.text()


async def test_backlog_sent_while_killed_is_answered_exactly_once_in_order(
    world: World, tmp_path: Path
) -> None:
    room = world.coordination
    bot = BotProcess(world.setup.write_config(), tmp_path / "bot.log")
    try:
        await warm_up(world, bot)
        bot.kill()
        commands = [await world.alice.say(room, f"!ping n{i:03d}") for i in range(BACKLOG)]

        # Killed again right after the restart, while it is draining the backlog.
        bot.start()
        await world.alice.wait_for(
            room,
            lambda e: (
                e.sender == world.setup.user_id and "n00" in e.source["content"].get("body", "")
            ),
            timeout=60,
        )
        bot.kill()
        # And once more before it can have done anything at all.
        bot.start()
        await asyncio.sleep(0.5)
        bot.kill()

        bot.start()
        await wait_until_answered(world, room, commands, seconds=240)
        answered = [e for e in world.answered(room) if e in set(commands)]
        assert answered == commands  # every command once, none twice, in order
        bodies = [
            content(e)["body"]
            for e in world.alice.replies(room, world.setup.user_id)
            if in_reply_to(e) in set(commands)
        ]
        assert all(body.startswith(f"pong n{i:03d}") for i, body in enumerate(bodies)), [
            b for b in bodies if not b.startswith("pong")
        ][:3]
        assert bot.terminate() == 0
        log = (tmp_path / "bot.log").read_text()
        # The backlog exceeded one sync's timeline, so the gap was really paginated.
        assert re.search(r"backfilled [1-9]\d* missed events", log)
        credentials = json.loads((tmp_path / "store" / "credentials.json").read_text())
        assert world.setup.password not in log
        assert credentials["access_token"] not in log
    finally:
        bot.kill()


async def test_burst_on_default_rate_limits_gets_every_reply(
    homeserver_default_limits: Homeserver,
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    tmp_path: Path,
) -> None:
    async with users_on(homeserver_default_limits, tmp_path_factory) as make_user:
        world = await build_world(homeserver_default_limits, make_user, database_url, tmp_path)
        # Only the bot should be throttled: the test's own sends are not what is measured.
        await exempt_from_rate_limits(homeserver_default_limits, world.alice.user_id)
        config = world.setup.write_config(logging={"json": True})
        bot = BotProcess(config, tmp_path / "bot.log")
        try:
            await warm_up(world, bot)
            commands = [
                await world.alice.say(world.coordination, f"!ping burst {i}") for i in range(30)
            ]
            await wait_until_answered(world, world.coordination, commands, seconds=240)
            answered = [e for e in world.answered(world.coordination) if e in set(commands)]
            assert answered == commands
            entries = [json.loads(line) for line in (tmp_path / "bot.log").read_text().splitlines()]
            assert any("ratelimited" in e["msg"] for e in entries), "the burst never hit a 429"
        finally:
            bot.kill()


async def test_a_reply_whose_sent_mark_is_lost_is_resent_and_not_posted_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender records a sent message while it already sends the next one. If that
    record never commits, the row is sent again under the same transaction ID, and the
    homeserver answers with the original event instead of posting a second one."""
    real_mark = outbox.mark_sent
    lost: list[str] = []

    async def mark_once_lost(
        session: AsyncSession,
        message_id: int,
        event_id: str,
        now: datetime,
        sent: dict[str, Any] | None = None,
    ) -> None:
        if not lost:
            lost.append(event_id)
            raise OperationalError("UPDATE outbox", {}, Exception("disk I/O error"))
        await real_mark(session, message_id, event_id, now, sent)

    monkeypatch.setattr(outbox, "mark_sent", mark_once_lost)
    async with world.running_bot() as bot:
        first = await world.alice.say(world.coordination, "!ping first")
        then = await world.alice.say(world.coordination, "!ping then")
        await wait_until_answered(world, world.coordination, [first, then], 60)
        # The answer can reach Alice before the sender has recorded the resend: wait for the
        # bot's own record (it never comes if the resend was not marked).
        marked: list[str] = []
        for _ in range(300):
            async with bot.app.db.snapshot() as session:
                rows = await session.execute(
                    text("SELECT sent_event_id FROM outbox WHERE sent_at IS NOT NULL ORDER BY id")
                )
                marked = [r[0] for r in rows]
            if lost and lost[0] in marked:
                break
            await asyncio.sleep(0.1)
    assert lost and lost[0] in marked  # the resend got the original event back, and was marked
    await asyncio.sleep(2)  # time for a double to arrive, were there one
    assert world.answered(world.coordination).count(first) == 1
    assert world.answered(world.coordination).count(then) == 1
