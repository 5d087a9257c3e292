"""Handling time of dossier commands on 10,000 dossiers and 50,000 assessments.

Handling = parse, authorize, workflow, storage (one transaction), as the pipeline runs it,
without the homeserver. The floor is `!ping` through the same path in the same run, so the
ratios say what the dossier queries add. Goal (issue 3): list and find under 50 ms.

    .venv/bin/python bench/dossier_volume.py [--postgres URL] [--rounds 50]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Role
from storage.db import Database
from tests.support.chat import Chat
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.seed import seed_dossiers

# Signs the audit entries the benchmark's commands write (a real bot reads audit.key).
BENCH_AUDIT_KEY = b"bench-audit-key-0123456789abcdef0123456789"

READER = "@reader:aegis.test"
COMMANDS = {
    "ping (floor)": "!ping",
    "dossier list": "!dossier list",
    "dossier list level>=3 kind=event": "!dossier list status=all level>=3 kind=event",
    "dossier list page=40": "!dossier list status=all page=40",
    "dossier find (title)": "!dossier find summit",
    "dossier find (reference)": "!dossier find EXT/4242",
    "dossier show": "!dossier show D-2025-4242",
    "threat list": "!threat list D-2025-4242",
}
RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


async def measure(url: str, rounds: int) -> dict[str, dict[str, float]]:
    db = Database(url, BENCH_AUDIT_KEY)
    await db.migrate()
    await seed_dossiers(db, dossiers=10_000, assessments=50_000)
    chat = Chat(db, {READER: {Role.POLICE}})
    rows: dict[str, dict[str, float]] = {}
    for name, text in COMMANDS.items():
        await chat.say(READER, text)  # warm caches and dateparser
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await chat.say(READER, text)
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        rows[name] = {
            "p50_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))],
        }
    await db.close()
    floor = rows["ping (floor)"]["p50_ms"]
    for row in rows.values():
        row["p50_ratio_to_floor"] = row["p50_ms"] / floor
    return rows


def table(backend: str, rows: dict[str, dict[str, float]]) -> str:
    lines = [
        f"\n{backend}: 10,000 dossiers, 50,000 assessments",
        f"{'command':38} {'p50 ms':>8} {'p95 ms':>8} {'p50/floor':>10}",
    ]
    for name, row in rows.items():
        lines.append(
            f"{name:38} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p50_ratio_to_floor']:10.1f}"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("AEGIS_TEST_DATABASE_URL", ""))
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    report: dict[str, object] = {"machine": machine(), "rounds": args.rounds, "backends": {}}
    backends = report["backends"]
    assert isinstance(backends, dict)
    with tempfile.TemporaryDirectory() as tmp:
        backends["sqlite"] = await measure(f"sqlite+aiosqlite:///{tmp}/bench.db", args.rounds)
        print(table("sqlite", backends["sqlite"]))
    if args.postgres:
        os.environ["AEGIS_TEST_DATABASE_URL"] = args.postgres
        url = await create_pg_database()
        try:
            backends["postgresql"] = await measure(url, args.rounds)
            print(table("postgresql", backends["postgresql"]))
        finally:
            await drop_pg_database(url)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dossier_volume.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
