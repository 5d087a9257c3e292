"""The fault suite: the bot SIGKILLed at random, the homeserver down, the database restarted,
and garbage typed at it. Whatever happens, every command is answered exactly once, the bot
neither exits nor spins, and a refused input changes nothing.

Sizes come from the issue; AEGIS_FAULT_COMMANDS, AEGIS_FAULT_KILLS, AEGIS_FAULT_OUTAGE,
AEGIS_FAULT_DB_OUTAGE and AEGIS_FAULT_EXAMPLES shrink them while developing; AEGIS_FAULT_SEED
replays a kill schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.scheduler import LONGEST_SLEEP
from commands import registry
from commands.dispatcher import Outcome
from config import Role
from storage import outbox
from storage.db import Database
from storage.tables import Base
from tests.conftest import UserFactory
from tests.support.bot_runner import BotProcess
from tests.support.chat import Chat
from tests.support.databases import BACKENDS, PG_URL, create_pg_database, drop_pg_database
from tests.support.homeserver import Homeserver
from tests.support.stream import CommandStream, cpu_seconds, warm_up
from tests.support.world import World, build_world
from tests.test_commands_fuzz import _garbled as garbled
from tests.test_commands_fuzz import _roles as fuzz_roles
from tests.test_commands_fuzz import _word as fuzz_word

COMMANDS = int(os.environ.get("AEGIS_FAULT_COMMANDS", "1000"))
KILLS = int(os.environ.get("AEGIS_FAULT_KILLS", "10"))
SEED = int(os.environ.get("AEGIS_FAULT_SEED", "20260607"))
OUTAGE = float(os.environ.get("AEGIS_FAULT_OUTAGE", "30"))

# The sender stays at most this many commands ahead of the replies, so commands keep
# arriving until the last kill instead of all being queued before the first. During one
# long stop it sends freely, which leaves the restarted bot more than a sync's timeline
# (100 events) to paginate.
AHEAD = 200
LONG_STOP = 5.0
# Resource bounds while the homeserver is away: a bot that waits costs next to nothing.
OUTAGE_CPU_SECONDS = 5.0
# Backoff 1, 2, 4, 8, 16 s (capped at 60) fits at most six sync attempts in 30 s; a hot loop
# would make thousands.
MAX_SYNC_ATTEMPTS_PER_30S = 10


async def outbox_left(database_url: str) -> int:
    """Rows the bot still meant to send: any would be a reply posted later, perhaps twice."""
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            return len(await outbox.pending(session))
    finally:
        await db.close()


def log_since(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def assert_clean_log(log: str) -> None:
    """No command ended as an internal error, and no reply was given up on."""
    for bad in ("handling failed", "giving up on a message"):
        assert bad not in log, re.findall(f".*{bad}.*", log)[:3]


async def test_killed_at_random_answers_every_command_exactly_once(
    world: World, tmp_path: Path
) -> None:
    """1,000 commands streamed while the bot is SIGKILLed 10 times at random moments and
    restarted each time: after a kill while handling, sending, syncing, backfilling or still
    starting up, every command gets one reply, never two."""
    rng = random.Random(SEED)
    print(f"kill-at-random: seed {SEED}, {COMMANDS} commands, {KILLS} kills")
    room = world.coordination
    log_path = tmp_path / "bot.log"
    bot = BotProcess(world.setup.write_config(), log_path)
    stream = CommandStream(world.alice, room, world.setup.user_id, "k")
    try:
        await warm_up(world, bot)
        started = time.monotonic()
        stream.ahead = AHEAD
        sending = asyncio.create_task(stream.send(COMMANDS, in_flight=8))
        sent_at: list[float] = []
        sending.add_done_callback(lambda _: sent_at.append(time.monotonic() - started))
        # One kill in each tenth of the stream, at a random point of it, so the kills are
        # spread over the whole stream however fast this machine is; some instead hit the
        # restart itself (login, first sync, backfill) before anything was answered.
        segment = COMMANDS / KILLS
        early = True  # not the first kill, and never two of them in a row
        long_stop = rng.randrange(KILLS)  # a stop long enough for a gap the bot must page
        for k in range(KILLS):
            early = not early and rng.random() < 0.3
            if early:
                delay = rng.uniform(0.0, 2.0)
                moment = f"{delay:.2f}s after restart"
                await asyncio.sleep(delay)
            else:
                threshold = int(segment * k + rng.uniform(0.05, 0.9) * segment)
                delay = rng.uniform(0.0, 0.5)
                moment = f"{delay:.2f}s after {threshold} answered"
                await stream.wait_answered(180, at_least=threshold)
                await asyncio.sleep(delay)
            answered = stream.answered()
            bot.kill()
            down = LONG_STOP if k == long_stop else rng.uniform(0.0, 1.0)
            print(
                f"kill {k + 1}: {moment} (at {answered} answered, {len(stream.sent)} sent, "
                f"{time.monotonic() - started:.1f}s); down {down:.2f}s"
            )
            if k == long_stop:  # the user does not wait for the bot: a gap piles up
                stream.ahead = None
            await asyncio.sleep(down)
            bot.start()
            stream.ahead = AHEAD
        await sending
        await stream.wait_answered(240)
        assert bot.terminate() == 0
        assert await outbox_left(world.setup.database_url) == 0
        await asyncio.sleep(1)  # a late duplicate would arrive with the next sync
        stream.check_exactly_once()
        log = log_path.read_text(errors="replace")
        assert_clean_log(log)
        print(
            f"kill-at-random: {COMMANDS} sent in {sent_at[0]:.1f}s, all answered once after "
            f"{time.monotonic() - started:.1f}s, {log.count('backfilled')} backfills"
        )
    finally:
        bot.kill()


# --- the homeserver down --------------------------------------------------------------------


@pytest.fixture
async def worlds(
    homeserver: Homeserver, user_factory: UserFactory, tmp_path: Path
) -> AsyncIterator[dict[str, World]]:
    """One world per database backend, so one outage of the shared homeserver serves both."""
    urls: dict[str, str] = {}
    for backend in BACKENDS:
        (tmp_path / backend).mkdir()
        if backend == "sqlite":
            urls[backend] = f"sqlite+aiosqlite:///{tmp_path / backend / 'aegis.db'}"
        else:
            urls[backend] = await create_pg_database()
    try:
        yield {
            backend: await build_world(homeserver, user_factory, url, tmp_path / backend)
            for backend, url in urls.items()
        }
    finally:
        for url in urls.values():
            if not url.startswith("sqlite"):
                await drop_pg_database(url)


async def test_homeserver_down_for_30s_the_bot_waits_without_spinning(
    homeserver: Homeserver, worlds: dict[str, World], tmp_path: Path
) -> None:
    """Synapse stops for 30 s in the middle of a stream, with replies still to send, and
    comes back. One bot per database backend lives through the same outage."""
    bots = {
        name: BotProcess(world.setup.write_config(), tmp_path / f"{name}.log")
        for name, world in worlds.items()
    }
    streams = {
        name: CommandStream(world.alice, world.coordination, world.setup.user_id, "h")
        for name, world in worlds.items()
    }
    try:
        await asyncio.gather(*(warm_up(worlds[name], bot) for name, bot in bots.items()))
        await asyncio.gather(*(s.send(60) for s in streams.values()))
        # Mid-stream: some replies are out, the rest are still to be handled or sent.
        await asyncio.gather(*(s.wait_answered(60, at_least=5) for s in streams.values()))
        offsets = {name: bot.log_path.stat().st_size for name, bot in bots.items()}
        try:
            await asyncio.to_thread(homeserver.stop)
            down = time.monotonic()
            pids = {name: bot.process.pid for name, bot in bots.items() if bot.process}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            await asyncio.sleep(OUTAGE)
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            outage = time.monotonic() - down
            logs = {name: log_since(bot.log_path, offsets[name]) for name, bot in bots.items()}
            for name, bot in bots.items():
                assert bot.alive, f"{name}: the bot exited during the outage:\n{logs[name]}"
        finally:
            await asyncio.to_thread(homeserver.start)
        up = time.monotonic()
        attempts = {name: log.count("sync failed") for name, log in logs.items()}
        sends = {name: log.count("send failed") for name, log in logs.items()}
        print(
            f"homeserver down {outage:.1f}s: bot CPU {cpu} s, sync attempts {attempts}, "
            f"send retries {sends}"
        )
        for name in bots:
            assert cpu[name] < OUTAGE_CPU_SECONDS * OUTAGE / 30, (name, cpu)
            assert 1 <= attempts[name] <= MAX_SYNC_ATTEMPTS_PER_30S * max(OUTAGE / 30, 1), (
                name,
                attempts,
            )
        await asyncio.gather(*(s.send(60, start=60) for s in streams.values()))
        await asyncio.gather(*(s.wait_answered(180) for s in streams.values()))
        print(f"homeserver back: all answered {time.monotonic() - up:.1f}s later")
        for name, bot in bots.items():
            assert bot.alive, name
            assert bot.terminate() == 0, name
            assert await outbox_left(worlds[name].setup.database_url) == 0, name
        await asyncio.sleep(1)
        for name, stream in streams.items():
            stream.check_exactly_once()
            assert_clean_log(bots[name].log_path.read_text(errors="replace"))
    finally:
        for bot in bots.values():
            bot.kill()
        if not homeserver.running:
            await asyncio.to_thread(homeserver.start)


# --- the database restarted -----------------------------------------------------------------

# Long enough that every loop of the bot meets the outage: the scheduler runs at least every
# LONGEST_SLEEP (sooner when a command wakes it), the sender and the webhook sender poll every
# few seconds, the sync loop writes its token after each sync.
DB_OUTAGE = float(os.environ.get("AEGIS_FAULT_DB_OUTAGE", str(LONGEST_SLEEP + 5)))


def pg_cluster() -> tuple[str, str]:
    """The Debian cluster (version, name) serving AEGIS_TEST_DATABASE_URL, found by port."""
    port = str(make_url(PG_URL).port or 5432)
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    )
    for line in listing.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    return sorted(os.listdir("/etc/postgresql"))[-1], "main"


def pg_ctl(action: str) -> None:
    """`stop` or `start` the cluster; starting one that already runs is no error."""
    version, name = pg_cluster()
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        capture_output=True,
        text=True,
    )
    status = subprocess.run(["pg_ctlcluster", version, name, "status"], capture_output=True)
    assert (status.returncode == 0) == (action == "start"), (done.stdout, done.stderr)


@pytest.mark.serial
@pytest.mark.skipif(not PG_URL, reason="needs AEGIS_TEST_DATABASE_URL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_restarted_mid_stream_nothing_lost_nothing_doubled(
    world: World, tmp_path: Path
) -> None:
    """PostgreSQL goes down for longer than the scheduler's longest sleep in the middle of a
    stream, while commands keep arriving, and comes back: every loop of the bot waits it out,
    and every command is answered exactly once. Restarts the shared server: run alone (marker
    serial)."""
    log_path = tmp_path / "bot.log"
    bot = BotProcess(world.setup.write_config(), log_path)
    stream = CommandStream(world.alice, world.coordination, world.setup.user_id, "d")
    try:
        await warm_up(world, bot)
        await stream.send(60, in_flight=4)
        await stream.wait_answered(60, at_least=5)
        offset = log_path.stat().st_size
        assert bot.process is not None
        try:
            await asyncio.to_thread(pg_ctl, "stop")
            down = time.monotonic()
            cpu_before = cpu_seconds(bot.process.pid)
            # Commands keep coming while the database is away: the bot sees them and must
            # neither answer them wrongly nor skip them.
            await stream.send(60, start=60, in_flight=4)
            await asyncio.sleep(max(0.0, DB_OUTAGE - (time.monotonic() - down)))
            cpu = cpu_seconds(bot.process.pid) - cpu_before
            outage = time.monotonic() - down
            assert bot.alive, f"the bot exited:\n{log_since(log_path, offset)[-5000:]}"
        finally:
            await asyncio.to_thread(pg_ctl, "start")
        up = time.monotonic()
        await stream.send(30, start=120, in_flight=4)
        await stream.wait_answered(180)
        recovered = time.monotonic() - up
        assert bot.alive
        log = log_since(log_path, offset)
        print(
            f"PostgreSQL down {outage:.1f}s: bot CPU {cpu:.2f}s; all answered "
            f"{recovered:.1f}s after it was back"
        )
        assert cpu < OUTAGE_CPU_SECONDS * max(outage / 30, 1), cpu
        # Each loop met the outage and lived through it.
        for sign in (
            "database unavailable while handling a sync",
            "outbox drain failed",
            "scheduler: database unavailable",
            "webhook delivery round failed",
        ):
            assert sign in log, f"no {sign!r} in the log: the outage missed that loop"
        assert bot.terminate() == 0
        assert await outbox_left(world.setup.database_url) == 0
        await asyncio.sleep(1)
        stream.check_exactly_once()
        assert_clean_log(log_path.read_text(errors="replace"))
    finally:
        bot.kill()
        await asyncio.to_thread(pg_ctl, "start")


# --- garbage ----------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("AEGIS_FAULT_EXAMPLES", "10000"))
ADMIN = "@admin:aegis.test"
# State for refused commands to leave alone: open and closed dossiers, a note, an assessment,
# a proposed measure, a role grant.
SEED_COMMANDS = [
    '!dossier open person "Visit of the President of X" category=head-of-state '
    'start="volgende maandag 9u" end="volgende maandag 18u" basis=status ref=BZ/2026/117',
    '!dossier open institution "Embassy of Y" category=embassy basis=threat',
    "!dossier note D-2026-0001 Motorcade route confirmed with the local police.",
    '!threat log D-2026-0001 level=3 source=OCAD review="in 14 days" ref=OCAD/26/311 threats',
    '!measure propose D-2026-0001 close-protection start=tomorrow end="in 10 days" '
    "executor=DAB visit programme includes public appearances",
    "!role grant @bob:aegis.test analyst",
    "!dossier close D-2026-0002 visit ended without incident",
]
_IDS = re.compile(r"\b(?:D-\d{4}-\d{4}|M-\d+|P-\d+|EW-\d+|W-\d+)\b")
_TARGETS = ["D-2026-0001", "D-2026-0002", "D-2026-0099", "D-2025-0001", "M-1", "M-2", "P-1"]
_TARGETS += ["P-9", "EW-1", "W-1", "D-", "M-0", "M--1", "D-2026-00001", ""]
_ACTORS = [ADMIN, "@fuzzer:aegis.test", "@bob:aegis.test", "@mallory:evil.example"]


def _near_miss(example: str, target: str, edits: list[tuple[int, int, str]]) -> str:
    """A real command from the help, aimed at an existing or missing object, then bent: words
    dropped, swapped, doubled or replaced by junk."""
    words = _IDS.sub(target, example).split(" ")
    for op, position, junk in edits:
        at = position % max(len(words), 1)
        if op == 0 and len(words) > 1:
            del words[at]
        elif op == 1:
            words.insert(at, junk)
        elif op == 2:
            words[at] = junk
        elif op == 3:
            words[at], words[-1] = words[-1], words[at]
        else:
            words.insert(at, words[at])
    return " ".join(words)


def _garbage() -> st.SearchStrategy[str]:
    examples = [example for declared in registry for example in declared.examples]
    examples += SEED_COMMANDS
    near_miss = st.builds(
        _near_miss,
        st.sampled_from(examples),
        st.sampled_from(_TARGETS),
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30), fuzz_word), max_size=4),
    )
    # The existing fuzzer's junk (tests/test_commands_fuzz.py), plus near misses of every
    # declared command, which get past the parser into the workflow's own checks.
    return st.one_of(garbled, near_miss, near_miss)


async def snapshot(db: Database) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every table but the audit trail's (an entry and its
    salt), in one query."""
    parts = []
    for name, table in Base.metadata.tables.items():
        if name in ("audit_log", "audit_salts"):
            continue
        if db.is_sqlite:
            row = "||','||".join(f'quote("{column.name}")' for column in table.columns)
            parts.append(
                f"SELECT '{name}', count(*), coalesce(group_concat(r, '|'), '') "
                f'FROM (SELECT {row} AS r FROM "{name}" ORDER BY 1)'
            )
        else:
            parts.append(
                f"SELECT '{name}', count(*), "
                f"coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM \"{name}\" AS t"
            )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(" UNION ALL ".join(parts)))).all()
    return {
        str(name): (int(count), hashlib.sha256(str(content).encode()).hexdigest())
        for name, count, content in rows
    }


@dataclasses.dataclass
class Fuzzing:
    """Carried from one example to the next: the chat, the tables as the last command left
    them, and how the commands ended."""

    chat: Chat
    tables: dict[str, tuple[int, str]]
    outcomes: Counter[Outcome] = dataclasses.field(default_factory=Counter)


@pytest.fixture
async def fuzzing(database: Database) -> AsyncIterator[Fuzzing]:
    chat = Chat(database, {ADMIN: set(Role)})
    empty = await snapshot(database)
    for command in SEED_COMMANDS:
        done = await chat.run(ADMIN, command)
        assert done.outcome is Outcome.OK, (command, done.reply)
    fuzzing = Fuzzing(chat, await snapshot(database))
    # The snapshot sees what the seed wrote, a count or only a changed row (the closing).
    changed = {t for t in empty if empty[t] != fuzzing.tables[t]}
    assert {"dossiers", "dossier_notes", "threat_assessments", "measures"} <= changed
    started = time.monotonic()
    yield fuzzing
    backend = "SQLite" if database.is_sqlite else "PostgreSQL"
    print(
        f"garbage ({backend}): {fuzzing.outcomes.total()} commands in "
        f"{time.monotonic() - started:.1f}s: {dict(fuzzing.outcomes)}"
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one database for all examples, on purpose
    ],
)
@given(body=_garbage(), actor=st.sampled_from(_ACTORS), roles=fuzz_roles)
async def test_garbage_never_crashes_and_refused_input_changes_nothing(
    fuzzing: Fuzzing, body: str, actor: str, roles: frozenset[Role]
) -> None:
    """10,000 fuzzed commands from senders with any roles, through the real dispatcher,
    workflow and database: none escapes as an exception (what the runtime answers with an
    internal error), and none that is refused or rejected changes any table but the audit
    trail."""
    chat = fuzzing.chat
    chat.access = dataclasses.replace(chat.access, roles={actor: roles, ADMIN: frozenset(Role)})
    done = await chat.run(actor, body)
    fuzzing.outcomes[done.outcome] += 1
    before, after = fuzzing.tables, await snapshot(chat.db)
    fuzzing.tables = after
    if done.outcome is not Outcome.OK:
        changed = sorted(t for t in after if before.get(t) != after[t])
        assert not changed, f"{done.outcome} {body!r} from {actor} changed {changed}"
