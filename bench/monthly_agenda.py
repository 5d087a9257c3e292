"""Build time of the monthly "Ambassades" agenda with 2,000 measures in force.

Two figures per backend: the agenda's data (its queries, one transaction), and the whole
`!agenda monthly` command as the pipeline runs it without the homeserver (parse, queries,
flags, rendering, splitting into messages and the Markdown file). Goal (issue 5): < 300 ms.

    .venv/bin/python bench/monthly_agenda.py [--postgres URL] [--rounds 20] [--measures 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Role
from storage.db import Database
from tests.support.chat import START, Chat
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.measure_seed import seed_measures

# Signs the audit entries the benchmark's commands write (a real bot reads audit.key).
BENCH_AUDIT_KEY = b"bench-audit-key-0123456789abcdef0123456789"

READER = "@reader:aegis.test"
RESULTS = Path(__file__).parent / "results"
GOAL_MS = 300.0


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


async def timed(run: Callable[[], Awaitable[object]], rounds: int) -> dict[str, float]:
    await run()  # warm up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * (len(samples) - 1))]}


async def measure(url: str, rounds: int, measures: int) -> dict[str, object]:
    db = Database(url, BENCH_AUDIT_KEY)
    await db.migrate()
    await seed_measures(db, START, measures)
    chat = Chat(db, {READER: {Role.POLICE}})

    async def build() -> object:
        async with chat.workflow() as workflow:
            return await workflow.agenda.monthly(chat.now)

    async def command() -> object:
        return await chat.say(READER, "!agenda monthly")

    reply = await chat.say(READER, "!agenda monthly")
    result: dict[str, object] = {
        "measures": measures,
        "messages": 1 + len(reply.also),
        "markdown_bytes": len(reply.attachments[0].data) if reply.attachments else 0,
        "build (queries + flags)": await timed(build, rounds),
        "!agenda monthly (build + render + split + file)": await timed(command, rounds),
    }
    await db.close()
    return result


def table(backend: str, result: dict[str, object]) -> str:
    lines = [
        f"\n{backend}: {result['measures']} measures in force → {result['messages']} messages, "
        f"{result['markdown_bytes']:,} bytes of Markdown",
        f"{'step':48} {'p50 ms':>8} {'p95 ms':>8}",
    ]
    for name, row in result.items():
        if isinstance(row, dict):
            verdict = "ok" if row["p95_ms"] < GOAL_MS else "OVER GOAL"
            lines.append(f"{name:48} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f}  {verdict}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("AEGIS_TEST_DATABASE_URL", ""))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--measures", type=int, default=2000)
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": machine(),
        "rounds": args.rounds,
        "goal_ms": GOAL_MS,
        "backends": {},
    }
    backends = report["backends"]
    assert isinstance(backends, dict)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        backends["sqlite"] = await measure(url, args.rounds, args.measures)
        print(table("sqlite", backends["sqlite"]))
    if args.postgres:
        os.environ["AEGIS_TEST_DATABASE_URL"] = args.postgres
        url = await create_pg_database()
        try:
            backends["postgresql"] = await measure(url, args.rounds, args.measures)
            print(table("postgresql", backends["postgresql"]))
        finally:
            await drop_pg_database(url)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monthly_agenda.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
