"""Handling time inside the bot, per command family, on 10,000 dossiers and 50,000
assessments, without the homeserver.

Two figures per command, both through the real dispatcher, workflow and database:

- pipeline: `bot.pipeline.Pipeline.handle` on a synthetic m.text event, which is everything
  the bot does between reading a command from a sync and handing the reply to the sender:
  claim the event, parse, authorize, workflow, storage, render (bot/render.py) and the
  outbox rows, in one transaction. This is the figure the goal is checked on.
- dispatch+render: tests/support/chat.py's Chat harness (parse, workflow, storage, one
  transaction) plus bot/render.py's `notice` (and file/announcement rendering), without the
  claim and the outbox.

The policy (meetings, quorum) is config/example.yaml's. Twenty proposals are pending at the
start. Write commands (open, note, threat log, measure propose) run on random open dossiers,
so the database grows while measured; the measure reads run before `measure propose`.
The seed's assessments all fall due for review before the chat's date (2026-11-25), so the
daily digest lists every open assessed dossier: a worst case, not a typical day.
Goal (issue 7): p95 under 20 ms for every family.

    .venv/bin/python bench/handling.py [--rounds 200] [--budget 60] [--postgres URL]
        [--family "dossier (read)" ...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nio
from sqlalchemy import text

from bench.common import create_pg, drop_pg, machine, percentile, write_result
from bot.app import policy
from bot.pipeline import Pipeline, Rooms
from bot.render import file_request, notice
from commands import Dispatcher, registry
from commands.replies import Reply, RoomKey, Severity
from config import Role, load_settings
from storage.db import Database
from tests.support.chat import START, Chat
from tests.support.rooms import make_audience, rooms_with
from tests.support.seed import seed_dossiers
from workflow import RuntimeInfo

# Signs the audit entries the benchmark's commands write (a real bot reads audit.key).
BENCH_AUDIT_KEY = b"bench-audit-key-0123456789abcdef0123456789"

GOAL_MS = 20.0
USER = "@bench:aegis.test"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "example.yaml"
SETUP_PROPOSALS = 20
MIN_ROUNDS = 10
ROOMS = {key: f"!{key.value}" for key in RoomKey}
# family -> command templates; {d} is a random open dossier, {f} a random open dossier with
# persons (a family: its show lists levels and measures per person), {n} a counter
FAMILIES: dict[str, list[str]] = {
    "core": ["!ping", "!help"],
    "dossier (read)": [
        "!dossier show {d}",
        "!dossier show {f}",
        "!dossier list",
        "!dossier find summit",
        "!dossier find Summit COUNCIL",
        "!dossier timeline {d}",
    ],
    "dossier (write)": [
        '!dossier open person "Bench visit {n}" category=head-of-state',
        "!dossier note {d} bench note {n}",
    ],
    "threat": ["!threat log {d} level=2 source=OCAD bench {n}", "!threat list {d}"],
    # Reads first, with SETUP_PROPOSALS pending; each propose adds one more.
    "measure": [
        "!measure list status=all",
        "!measure show M-1",
        "!approvals",
        "!measure propose {d} patrol bench {n}",
    ],
    "meeting / agenda": ["!meeting list", "!agenda weekly", "!agenda daily"],
    "export": ["!export {d} format=json"],
    "audit": ["!audit {d}"],
    "role": ["!role list"],
    "early warning": ["!ew list"],
}


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def rendered(reply: Reply, event_id: str) -> int:
    """What the pipeline's _enqueue renders for a reply; returns the bytes, to use them."""
    size = len(notice(reply, in_reply_to=event_id)["formatted_body"])
    size += sum(len(notice(a.reply)["body"]) for a in reply.also)
    size += sum(len(file_request(a, event_id)["data"]) for a in reply.attachments)
    return size


async def timed(run: Callable[[], Awaitable[object]], rounds: int, budget: float) -> list[float]:
    """`rounds` samples, or fewer (at least MIN_ROUNDS) once `budget` seconds are spent, so a
    command that takes seconds does not hold up the run for an hour."""
    await run()  # warm caches (dateparser, statement cache)
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
        if len(samples) >= MIN_ROUNDS and time.perf_counter() > deadline:
            break
    return samples


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": percentile(samples, 0.95),
        "max_ms": max(samples),
    }


async def measure(
    url: str, rounds: int, budget: float, only: list[str] | None = None
) -> dict[str, object]:
    db = Database(url, BENCH_AUDIT_KEY)
    await db.migrate()
    await seed_dossiers(db, dossiers=10_000, assessments=50_000)
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT ref FROM dossiers WHERE status = 'open'"))
        open_refs = [str(r[0]) for r in rows]
        rows = await session.execute(
            text(
                "SELECT ref FROM dossiers WHERE status = 'open' AND id IN "
                "(SELECT dossier_id FROM dossier_persons GROUP BY dossier_id HAVING count(*) > 1)"
            )
        )
        families = [str(r[0]) for r in rows]
    settings = load_settings(EXAMPLE_CONFIG)
    rules = policy(settings)
    everything = set(Role)
    chat = Chat(db, {USER: everything}, now=START, policy=rules)
    tz = ZoneInfo(settings.bot.timezone)
    own = "@aegis:aegis.test"
    info = RuntimeInfo("bench", START)
    # Encrypted rooms where the bench user, who holds every role, is the only member.
    state = rooms_with(ROOMS.values(), USER)
    audience = make_audience(
        chat.access, state, own, ROOMS[RoomKey.COORDINATION], FixedClock(START), info
    )
    pipeline = Pipeline(
        db=db,
        dispatcher=Dispatcher(registry, "!", settings.bot.max_command_bytes),
        access=chat.access,
        info=info,
        policy=rules,
        clock=FixedClock(START),
        rooms=Rooms(dict(ROOMS)),
        own_user_id=own,
        prefix="!",
        tz=tz,
        wake_sender=lambda: None,
        request_keys=lambda _event: asyncio.sleep(0),
        audience=audience,
    )
    rng = random.Random(7)
    counter = itertools.count(1)
    stamp = int(START.timestamp() * 1000)

    def command(template: str) -> str:
        return template.format(d=rng.choice(open_refs), f=rng.choice(families), n=next(counter))

    # M-1 must exist for `!measure show M-1`; twenty proposals wait for a decision, half of
    # them for one person of a family.
    for n in range(SETUP_PROPOSALS):
        setup = (
            "!measure propose {f} close-protection for=1 bench setup {n}"
            if n % 2
            else ("!measure propose {d} patrol bench setup {n}")
        )
        made = await chat.say(USER, command(setup))
        assert made.severity is not Severity.ERROR, made.title

    results: dict[str, object] = {}
    for family, templates in FAMILIES.items():
        if only and family not in only:
            continue
        per_command: dict[str, object] = {}
        family_samples: list[float] = []
        for template in templates:
            check = await chat.say(USER, command(template))
            event_ids = itertools.count(1)

            async def via_chat(template: str = template) -> object:
                reply = await chat.say(USER, command(template))
                return rendered(reply, "$bench")

            async def via_pipeline(
                template: str = template, event_ids: Iterator[int] = event_ids
            ) -> None:
                n = next(event_ids)
                event = nio.RoomMessageText.from_dict(
                    {
                        "event_id": f"$bench-{template}-{n}",
                        "sender": USER,
                        "origin_server_ts": stamp,
                        "type": "m.room.message",
                        "room_id": ROOMS[RoomKey.COORDINATION],
                        "content": {"msgtype": "m.text", "body": command(template)},
                    }
                )
                await pipeline.handle(ROOMS[RoomKey.COORDINATION], event)

            pipeline_samples = await timed(via_pipeline, rounds, budget)
            chat_samples = await timed(via_chat, rounds, budget)
            family_samples += pipeline_samples
            per_command[template] = {
                "reply": f"{check.severity.value}: {check.title}"[:100],
                "pipeline": stats(pipeline_samples),
                "dispatch+render": stats(chat_samples),
            }
        results[family] = {
            "commands": per_command,
            "pipeline": stats(family_samples),
            "p95_under_20ms": percentile(family_samples, 0.95) < GOAL_MS,
        }
    await db.close()
    return results


def table(backend: str, results: dict[str, object]) -> str:
    lines = [
        f"\n{backend}: 10,000 dossiers, 50,000 assessments (ms)",
        f"{'family / command':56} {'pipe p50':>8} {'pipe p95':>8} {'d+r p50':>8} {'d+r p95':>8}",
    ]
    for family, result in results.items():
        assert isinstance(result, dict)
        verdict = "ok" if result["p95_under_20ms"] else "OVER GOAL"
        fam = result["pipeline"]
        lines.append(
            f"{family:56} {fam['p50_ms']:8.1f} {fam['p95_ms']:8.1f} {'':>8} {'':>8}  {verdict}"
        )
        for template, row in result["commands"].items():
            pipe, chat = row["pipeline"], row["dispatch+render"]
            lines.append(
                f"  {template[:54]:54} {pipe['p50_ms']:8.1f} {pipe['p95_ms']:8.1f} "
                f"{chat['p50_ms']:8.1f} {chat['p95_ms']:8.1f}"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per command and path (min 10 rounds)"
    )
    parser.add_argument("--postgres", default=os.environ.get("AEGIS_TEST_DATABASE_URL", ""))
    parser.add_argument("--output", default="handling", help="bench/results/<name>.json")
    parser.add_argument("--note", default="", help="stored with the results, e.g. 'trial run'")
    parser.add_argument(
        "--family", action="append", choices=list(FAMILIES), help="only these (repeatable)"
    )
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": machine(),
        "note": args.note,
        "rounds": args.rounds,
        "budget_s": args.budget,
        "goal": f"p95 < {GOAL_MS:.0f} ms per family (pipeline figure)",
        "backends": {},
    }
    backends = report["backends"]
    assert isinstance(backends, dict)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{tmp}/bench.db"
        backends["sqlite"] = await measure(sqlite, args.rounds, args.budget, args.family)
        print(table("sqlite", backends["sqlite"]))
    if args.postgres:
        url = await create_pg(args.postgres)
        try:
            backends["postgresql"] = await measure(url, args.rounds, args.budget, args.family)
            print(table("postgresql", backends["postgresql"]))
        finally:
            await drop_pg(url)
    print(f"written to {write_result(args.output, report)}")


if __name__ == "__main__":
    asyncio.run(main())
