"""Round trip from a user's send to the reply that user sees, against the floor and two peers.

One Synapse on loopback (relaxed rate limits), one driver user, and four bots as separate
processes, each in its own unencrypted room (every contender alike: maubot standalone runs
without its optional E2EE dependencies):

- floor: bench/floor_echo.py, a bare matrix-nio client echoing every m.text;
- Aegis: `python -m bot run` on a database seeded with 10,000 dossiers and 50,000 assessments;
- matrix-reminder-bot (PyPI) answering `!help`;
- maubot standalone (PyPI) with the echo plugin in bench/maubot_echo/.

Samples are interleaved (sample i of every row, then sample i+1), one command in flight at a
time, so the contenders share whatever the machine is doing. `!dossier show` picks a random
dossier each time; the floor and maubot are sent the same text and echo it. Goal (issue 7):
Aegis's p50 within 1.10x the floor's, and not slower than either peer.

    .venv/bin/python bench/latency.py [--samples 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    AegisBot,
    Contender,
    Driver,
    Floor,
    Maubot,
    ReminderBot,
    create_pg,
    drop_pg,
    machine,
    peak_rss_mb,
    percentile,
    prepare,
    write_result,
)
from storage.db import Database
from tests.support.homeserver import Homeserver
from tests.support.seed import seed_dossiers

GOAL_RATIO = 1.10
DOSSIERS, ASSESSMENTS = 10_000, 50_000


@dataclass
class Row:
    contender: Contender
    kind: str  # "ping" or "show": which floor row it is compared with
    label: str
    samples: list[float] = field(default_factory=list)
    timeouts: int = 0

    def text(self, dossier: int) -> str:
        wanted = "!ping" if self.kind == "ping" else f"!dossier show D-2025-{dossier:04d}"
        return self.contender.command(wanted)

    def summary(self) -> dict[str, float | int | None]:
        if not self.samples:
            return {"n": 0, "timeouts": self.timeouts, "p50_ms": None, "p95_ms": None}
        return {
            "n": len(self.samples),
            "timeouts": self.timeouts,
            "p50_ms": statistics.median(self.samples),
            "p95_ms": percentile(self.samples, 0.95),
            "mean_ms": statistics.fmean(self.samples),
            "min_ms": min(self.samples),
            "max_ms": max(self.samples),
        }


async def seeded_database(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await seed_dossiers(db, dossiers=DOSSIERS, assessments=ASSESSMENTS)
    await db.close()


async def run(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, object]:
    await seeded_database(database_url)
    hs = Homeserver(workdir / "synapse")
    hs.start()
    driver = await Driver.create(hs, workdir)
    floor = Floor("floor", workdir / "floor")
    aegis = AegisBot("aegis", workdir / "aegis", database_url=database_url)
    reminder = ReminderBot("matrix-reminder-bot", workdir / "reminder")
    maubot = Maubot("maubot", workdir / "maubot", handle_missed=False)
    contenders: list[Contender] = [floor, aegis, reminder, maubot]
    try:
        for contender in contenders:
            ok = await prepare(contender, hs, driver, "!ping")
            print(f"{contender.name}: {'ready' if ok else 'FAILED'}", file=sys.stderr)
        rows = [
            Row(floor, "ping", "floor: echo of !ping"),
            Row(floor, "show", "floor: echo of !dossier show"),
            Row(aegis, "ping", "Aegis: !ping"),
            Row(aegis, "show", "Aegis: !dossier show (10k dossiers)"),
            Row(reminder, "ping", "matrix-reminder-bot: !help"),
            Row(maubot, "ping", "maubot echo: !ping"),
            Row(maubot, "show", "maubot echo: !dossier show"),
        ]
        live = [row for row in rows if row.contender.error is None]
        rng = random.Random(7)
        for index in range(-args.warmup, args.samples):
            dossier = rng.randint(1, DOSSIERS)
            shift = index % len(live)
            for row in live[shift:] + live[:shift]:
                ms = await driver.round_trip(row.contender, row.text(dossier), args.timeout)
                if index < 0:
                    continue
                if ms is None:
                    row.timeouts += 1
                else:
                    row.samples.append(ms)
            if index >= 0 and (index + 1) % max(1, args.samples // 10) == 0:
                print(f"  {index + 1}/{args.samples}", file=sys.stderr)
    finally:
        for contender in contenders:
            contender.stop()
        await driver.close()
        hs.stop()
    return report(rows, contenders)


def report(rows: list[Row], contenders: list[Contender]) -> dict[str, object]:
    summaries: dict[str, dict[str, Any]] = {
        row.label: {"kind": row.kind, **row.summary()} for row in rows
    }
    floor_p50 = {
        row.kind: summaries[row.label]["p50_ms"] for row in rows if row.contender.name == "floor"
    }
    for row in rows:
        own, base = summaries[row.label]["p50_ms"], floor_p50.get(row.kind)
        summaries[row.label]["p50_ratio_to_floor"] = own / base if own and base else None
        p95, base95 = summaries[row.label]["p95_ms"], None
        for other in rows:
            if other.contender.name == "floor" and other.kind == row.kind:
                base95 = summaries[other.label]["p95_ms"]
        summaries[row.label]["p95_ratio_to_floor"] = p95 / base95 if p95 and base95 else None
    goals: dict[str, object] = {}
    for kind in ("ping", "show"):
        aegis = next(r for r in rows if r.contender.name == "aegis" and r.kind == kind)
        own = summaries[aegis.label]
        peers = {
            r.label: summaries[r.label]["p50_ms"]
            for r in rows
            if r.contender.name in ("matrix-reminder-bot", "maubot")
            and (r.kind == kind or r.contender.name == "matrix-reminder-bot")
        }
        ratio = own["p50_ratio_to_floor"]
        measured_peers = {k: v for k, v in peers.items() if v is not None}
        goals[kind] = {
            "p50_within_1.10x_floor": None if ratio is None else ratio <= GOAL_RATIO,
            "p50_not_slower_than_peers": (
                None
                if own["p50_ms"] is None or not measured_peers
                else all(own["p50_ms"] <= v for v in measured_peers.values())
            ),
            "peers_compared": measured_peers,
            "peers_missing": [k for k, v in peers.items() if v is None],
        }
    return {
        "rows": summaries,
        "goals": goals,
        "contenders": {
            c.name: {"error": c.error, "peak_rss_mb": peak_rss_mb(c)} for c in contenders
        },
    }


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    assert isinstance(rows, dict)
    lines = [
        f"{'row':40} {'n':>4} {'lost':>4} {'p50 ms':>8} {'p95 ms':>8} {'p50/floor':>9} "
        f"{'p95/floor':>9}"
    ]

    def num(value: object, spec: str) -> str:
        return format(value, spec) if isinstance(value, float) else "—"

    for label, row in rows.items():
        lines.append(
            f"{label:40} {row['n']:>4} {row['timeouts']:>4} {num(row['p50_ms'], '8.1f'):>8} "
            f"{num(row['p95_ms'], '8.1f'):>8} {num(row['p50_ratio_to_floor'], '9.2f'):>9} "
            f"{num(row['p95_ratio_to_floor'], '9.2f'):>9}"
        )
    contenders = result["contenders"]
    assert isinstance(contenders, dict)
    for name, info in contenders.items():
        if info["error"]:
            lines.append(f"{name}: NOT MEASURED: {info['error'].splitlines()[0]}")
        else:
            lines.append(f"{name}: peak RSS {num(info['peak_rss_mb'], '.1f')} MB")
    lines.append(f"goals: {result['goals']}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0, help="per reply, seconds")
    parser.add_argument("--postgres", default="", help="run Aegis on this PostgreSQL server")
    parser.add_argument("--output", default="latency", help="bench/results/<name>.json")
    parser.add_argument("--note", default="", help="stored with the results, e.g. 'trial run'")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": machine(),
        "note": args.note,
        "rooms": "unencrypted, for every contender",
        "samples": args.samples,
        "warmup": args.warmup,
        "dossiers": DOSSIERS,
        "assessments": ASSESSMENTS,
        "aegis_database": "postgresql" if args.postgres else "sqlite",
        "goal": "Aegis p50 <= 1.10x floor p50 and <= each peer's p50",
    }
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        if args.postgres:
            url = await create_pg(args.postgres)
            try:
                report.update(await run(args, Path(tmp), url))
            finally:
                await drop_pg(url)
        else:
            report.update(await run(args, Path(tmp), f"sqlite+aiosqlite:///{tmp}/aegis.db"))
    print(table(report))
    print(f"written to {write_result(args.output, report)}")


if __name__ == "__main__":
    asyncio.run(main())
