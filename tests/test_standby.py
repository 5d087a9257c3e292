"""Active/standby: one leader lock per database (an advisory lock on PostgreSQL, a file lock on
SQLite), and two real bot processes on one account where the active one is SIGKILLed
mid-stream and the standby answers the rest, nothing lost and nothing twice."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.app import Aegis
from config import load_settings
from storage.leader import FileLock, Leadership, LeadershipLost, lock_for
from tests.support.bot_runner import REPO, BotProcess
from tests.support.matrix_user import content, in_reply_to
from tests.support.world import World

FAST = 0.05  # poll interval for the unit tests
WAIT = 15.0  # generous bound on one lock hand-over in the unit tests
COMMANDS = 60
KILL_AFTER = 20


def is_pg(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


async def pg_connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )


async def advisory_holders(url: str) -> list[int]:
    """Backend PIDs holding an advisory lock in this database."""
    conn = await pg_connect(url)
    try:
        rows = await conn.fetch(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        )
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def terminate_backend(url: str, pid: int) -> None:
    """Ends a session as a PostgreSQL restart or a network cut would, and waits until it is
    gone (and its locks with it)."""
    conn = await pg_connect(url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(200):
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(FAST)
        raise AssertionError(f"backend {pid} still alive")
    finally:
        await conn.close()


# --- the lock ----------------------------------------------------------------------------


async def test_second_holder_cannot_acquire_until_the_first_releases(database_url: str) -> None:
    first, second = lock_for(database_url), lock_for(database_url)
    assert first is not None and second is not None
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert not await second.try_acquire()  # polling again changes nothing
        assert await first.still_held()
        await first.release()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.release()
        await second.release()


async def test_standby_waits_logs_and_takes_over_on_release(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage.leader")
    active, standby = Leadership(database_url, FAST), Leadership(database_url, FAST)
    stop = asyncio.Event()
    try:
        assert await active.acquire(stop)
        waiting = asyncio.create_task(standby.acquire(stop))
        for _ in range(400):
            if "standby: waiting for the active instance" in caplog.text:
                break
            await asyncio.sleep(FAST)
        assert not waiting.done()
        assert not standby.held
        await active.release()
        assert await asyncio.wait_for(waiting, WAIT)
        assert standby.held
    finally:
        await active.release()
        await standby.release()


async def test_a_stopped_standby_gives_up_without_the_lock(database_url: str) -> None:
    active, standby = Leadership(database_url, FAST), Leadership(database_url, FAST)
    stop = asyncio.Event()
    try:
        assert await active.acquire(asyncio.Event())
        waiting = asyncio.create_task(standby.acquire(stop))
        await asyncio.sleep(5 * FAST)
        stop.set()
        assert await asyncio.wait_for(waiting, WAIT) is False
        assert not standby.held
    finally:
        await active.release()
        await standby.release()


HOLDER = """
import asyncio, sys
from storage.leader import Leadership

async def main() -> None:
    leadership = Leadership(sys.argv[1], 0.05)
    assert await leadership.acquire(asyncio.Event())
    print("locked", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_lock_of_a_sigkilled_process_is_released(database_url: str) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        database_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    waiter = Leadership(database_url, FAST)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 60)
        assert line.strip() == b"locked"
        lock = lock_for(database_url)
        assert lock is not None
        assert not await lock.try_acquire()
        await lock.release()
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        await holder.wait()
        assert await asyncio.wait_for(waiter.acquire(asyncio.Event()), WAIT)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await waiter.release()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_lost_session_is_taken_back_when_nobody_else_holds_the_lock(
    database_url: str,
) -> None:
    active = Leadership(database_url, FAST)
    other = lock_for(database_url)
    assert other is not None
    stop = asyncio.Event()
    try:
        assert await active.acquire(stop)
        [pid] = await advisory_holders(database_url)
        await terminate_backend(database_url, pid)  # as a PostgreSQL restart does
        watch = asyncio.create_task(active.watch(stop))
        for _ in range(400):
            if [h for h in await advisory_holders(database_url) if h != pid]:
                break
            await asyncio.sleep(FAST)
        assert active.held
        assert not await other.try_acquire()  # the lock is back with the active instance
        stop.set()
        await watch  # returns normally: nothing was lost for good
        assert not active.lost
    finally:
        stop.set()
        await active.release()
        await other.release()


async def test_an_active_instance_steps_down_when_another_took_the_lock(
    database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: the session died and a standby got the lock first. SQLite: the lock file was
    deleted and another process locked a new one. Either way: stop and LeadershipLost."""
    active, other = Leadership(database_url, FAST), Leadership(database_url, FAST)
    stop = asyncio.Event()
    try:
        assert await active.acquire(stop)
        if is_pg(database_url):
            [pid] = await advisory_holders(database_url)
            await terminate_backend(database_url, pid)
        else:
            (tmp_path / "aegis.db.lock").unlink()
        assert await asyncio.wait_for(other.acquire(asyncio.Event()), WAIT)
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(active.watch(stop), WAIT)
        assert stop.is_set()
        assert active.lost and not active.held
        assert other.held
    finally:
        await active.release()
        await other.release()


async def test_file_lock_names_the_holding_process(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "db.sqlite.lock")
    try:
        assert await lock.try_acquire()
        assert (tmp_path / "db.sqlite.lock").read_text().strip() == str(os.getpid())
    finally:
        await lock.release()
    assert (tmp_path / "db.sqlite.lock").exists()  # never unlinked: see FileLock.release


# --- the bot -----------------------------------------------------------------------------


async def test_a_standby_bot_touches_neither_store_nor_port_until_it_holds_the_lock(
    database_url: str, tmp_path: Path
) -> None:
    config = {
        "matrix": {
            "homeserver": "http://127.0.0.1:9",
            "user_id": "@aegis:example.org",
            "password": "not-used",
            "store_path": str(tmp_path / "store"),
        },
        "database": {"url": database_url},
        "rooms": {
            "coordination": "!a:example.org",
            "approvals": "!b:example.org",
            "operations": "!c:example.org",
            "early_warning": "!d:example.org",
        },
        "http": {"listen": "127.0.0.1:0"},
    }
    path = tmp_path / "aegis.yaml"
    path.write_text(yaml.safe_dump(config))
    holder = Leadership(database_url, FAST)
    assert await holder.acquire(asyncio.Event())
    app = Aegis(load_settings(path))
    run = asyncio.create_task(app.run())
    try:
        await asyncio.sleep(1)
        assert not run.done()
        assert app.web is None  # the HTTP server starts on takeover only
        assert list((tmp_path / "store").iterdir()) == []  # the E2EE store is not opened
        app.stop.set()
        await asyncio.wait_for(run, WAIT)  # a standby stops cleanly
    finally:
        app.stop.set()
        await holder.release()


# --- two real processes ------------------------------------------------------------------

ACTIVE_LINE = "active: this instance holds the leader lock"
STANDBY_LINE = "standby: waiting for the active instance"


async def wait_for_roles(
    bots: list[BotProcess], seconds: float = 60
) -> tuple[BotProcess, BotProcess]:
    """(active, standby), as their own logs say."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        logs = [b.log_path.read_text() if b.log_path.exists() else "" for b in bots]
        active = [b for b, text in zip(bots, logs, strict=True) if ACTIVE_LINE in text]
        standby = [b for b, text in zip(bots, logs, strict=True) if STANDBY_LINE in text]
        if len(active) == 1 and len(standby) == 1 and active != standby:
            return active[0], standby[0]
        assert len(active) < 2, "both instances claim to be active"
        await asyncio.sleep(0.1)
    tails = {b.log_path.name: b.log_path.read_text()[-2000:] for b in bots if b.log_path.exists()}
    raise AssertionError(f"no clear active/standby pair: {tails}")


async def wait_for_line(bot: BotProcess, line: str, seconds: float) -> float:
    """When (time.monotonic) the line showed up in the bot's log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line in bot.log_path.read_text():
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{bot.log_path.name}: no {line!r}")


async def reply_seen(world: World, room: str, event_id: str) -> float:
    await world.alice.reply_to(room, event_id, timeout=120)
    return time.monotonic()


async def test_standby_takes_over_from_a_killed_active_with_every_command_answered_once(
    world: World, tmp_path: Path
) -> None:
    room = world.coordination
    config = world.setup.write_config()
    bots = [BotProcess(config, tmp_path / "a.log"), BotProcess(config, tmp_path / "b.log")]
    try:
        for bot in bots:  # started together: they race for the lock, migrations included
            bot.start()
        active, standby = await wait_for_roles(bots)
        await world.admin.wait_for_member(room, world.setup.user_id, timeout=60)
        probe = await world.alice.say(room, "!ping warm-up")
        await world.alice.reply_to(room, probe, timeout=60)

        commands = [await world.alice.say(room, f"!ping n{i:03d}") for i in range(KILL_AFTER)]
        active.kill()
        killed_at = time.monotonic()
        # Sent after the kill: only the standby can answer this one.
        first_after = await world.alice.say(room, f"!ping n{KILL_AFTER:03d}")
        commands.append(first_after)
        first_reply = asyncio.create_task(reply_seen(world, room, first_after))
        lock_taken = asyncio.create_task(wait_for_line(standby, ACTIVE_LINE, 120))
        for i in range(KILL_AFTER + 1, COMMANDS):
            commands.append(await world.alice.say(room, f"!ping n{i:03d}"))
        locked_after = await lock_taken - killed_at
        answering_after = await first_reply - killed_at

        wanted = set(commands) | {probe}
        await world.alice._wait(
            lambda: wanted <= set(world.answered(room)), 120, f"replies to {COMMANDS} commands"
        )
        await asyncio.sleep(2)  # room for a doubled reply to show up
        counts = Counter(e for e in world.answered(room) if e in wanted)
        assert {e: n for e, n in counts.items() if n != 1} == {}
        assert set(counts) == wanted
        answered = [e for e in world.answered(room) if e in set(commands)]
        assert answered == commands  # in order, across the hand-over
        bodies = [
            content(e)["body"]
            for e in world.alice.replies(room, world.setup.user_id)
            if in_reply_to(e) in set(commands)
        ]
        assert all(b.startswith(f"pong n{i:03d}") for i, b in enumerate(bodies))

        log = standby.log_path.read_text()
        assert log.index(STANDBY_LINE) < log.index(ACTIVE_LINE)
        assert "logged in" not in log[: log.index(ACTIVE_LINE)]  # no login while standby
        backend = make_url(world.setup.database_url).get_backend_name()
        print(
            f"\n[standby/{backend}] lock taken {locked_after:.2f} s after SIGKILL;"
            f" first command answered {answering_after:.2f} s after SIGKILL"
        )
        assert standby.terminate() == 0
    finally:
        for bot in bots:
            bot.kill()
