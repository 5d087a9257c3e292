"""Commands queued while a bot is down, and a burst under Synapse's default rate limits.

Backlog (relaxed rate limits, so the homeserver is not what is measured): each contender in
turn is started, answers a probe, is stopped (SIGTERM); the driver then sends N commands
(1,000 by default) into its room; the contender is started again and the run waits until
every command is answered or no reply came for --idle seconds. Reported: replies per command
(lost = none, doubled = more than one), time from the restart to the last reply, and
throughput (answered / that time) with its ratio to the floor's. Goal (issue 7): Aegis at
least 0.8x the floor's throughput, zero lost, zero doubled. Clients that trust a plain
incremental sync see only the last events of the gap; the peers run with their stock sync
(maubot with ignore_first_sync false, the setting it documents for handling missed events).

Burst (Synapse with its default rate limits; the driver alone is exempted): a running,
warmed-up contender is sent 30 commands back to back; replies are counted per command.

matrix-reminder-bot does not mark its replies as replies, so for it only the total number of
replies is known (lost = N - replies when fewer; doubles cannot be told apart).

    .venv/bin/python bench/backlog.py [--commands 1000] [--burst 30] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
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
    exempt_from_rate_limits,
    machine,
    peak_rss_mb,
    prepare,
    write_result,
)
from storage.db import Database
from tests.support.homeserver import Homeserver

GOAL_THROUGHPUT_RATIO = 0.8


def contenders(workdir: Path, database_url: str) -> list[Contender]:
    return [
        Floor("floor", workdir / "floor"),
        AegisBot("aegis", workdir / "aegis", database_url=database_url),
        ReminderBot("matrix-reminder-bot", workdir / "reminder"),
        Maubot("maubot", workdir / "maubot", handle_missed=True),
    ]


async def collect(
    driver: Driver,
    bot: Contender,
    commands: list[str],
    since: float,
    idle: float,
    cap: float,
    settle: float,
) -> None:
    """Until every command has a reply, or nothing arrived for `idle` s (the count is final
    once the bot is quiet), or `cap` s passed; then `settle` s more to catch doubles."""
    wanted = set(commands)
    deadline = since + cap

    def answered() -> set[str]:
        if not bot.replies_in_thread:
            count = len(driver.replies_from(bot, since))
            return set(commands[:count])
        return {str(s.in_reply_to) for s in driver.replies_from(bot, since)} & wanted

    while time.perf_counter() < deadline:
        before = len(driver.replies_from(bot, since))
        window = min(idle, deadline - time.perf_counter())
        await driver.wait(lambda: answered() >= wanted, window)
        if answered() >= wanted:
            break
        if len(driver.replies_from(bot, since)) == before:  # quiet for a whole window
            break
    await asyncio.sleep(settle)


def tally(driver: Driver, bot: Contender, commands: list[str], since: float) -> dict[str, object]:
    replies = driver.replies_from(bot, since)
    result: dict[str, object] = {"sent": len(commands), "replies": len(replies)}
    if bot.replies_in_thread:
        per = collections.Counter(s.in_reply_to for s in replies)
        answered = [c for c in commands if per[c] > 0]
        order = [s.in_reply_to for s in replies if per.get(s.in_reply_to)]
        result.update(
            answered=len(answered),
            lost=len(commands) - len(answered),
            doubled=sum(1 for c in commands if per[c] > 1),
            replies_to_other_events=sum(n for e, n in per.items() if e not in set(commands)),
            in_order=[e for e in order if e in set(commands)] == answered,
        )
    else:
        result.update(
            answered=min(len(replies), len(commands)),
            lost=max(0, len(commands) - len(replies)),
            doubled=None,
            note="replies carry no in_reply_to: only their total is known",
        )
    if replies:
        first, last = replies[0].at - since, replies[-1].at - since
        answered_count = result["answered"]
        assert isinstance(answered_count, int)
        result.update(
            first_reply_s=first,
            last_reply_s=last,
            throughput_per_s=answered_count / last if last > 0 else None,
            steady_per_s=(answered_count - 1) / (last - first) if last > first else None,
        )
    return result


async def backlog(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, object]:
    hs = Homeserver(workdir / "synapse")
    hs.start()
    driver = await Driver.create(hs, workdir)
    bots = contenders(workdir / "backlog", database_url)
    results: dict[str, object] = {}
    try:
        for bot in bots:
            if not await prepare(bot, hs, driver, "!ping warm-up"):
                results[bot.name] = {"error": bot.error}
                continue
            bot.stop()  # SIGTERM: the outage starts
            await asyncio.sleep(1)
            commands = [
                (await driver.send(bot.room_id, bot.command(f"!ping n{i:04d}")))[0]
                for i in range(args.commands)
            ]
            print(f"{bot.name}: {len(commands)} commands queued, restarting", file=sys.stderr)
            since = time.perf_counter()
            bot.start()
            await collect(driver, bot, commands, since, args.idle, args.cap, args.settle)
            bot.stop()
            results[bot.name] = {**tally(driver, bot, commands, since), "error": None}
            results[bot.name]["peak_rss_mb"] = peak_rss_mb(bot)  # type: ignore[index]
            print(f"  {results[bot.name]}", file=sys.stderr)
    finally:
        for bot in bots:
            bot.stop()
        await driver.close()
        hs.stop()
    floor = results.get("floor", {})
    base = floor.get("throughput_per_s") if isinstance(floor, dict) else None
    for result in results.values():
        if isinstance(result, dict) and result.get("throughput_per_s") and base:
            result["throughput_ratio_to_floor"] = result["throughput_per_s"] / base
    aegis = results.get("aegis", {})
    assert isinstance(aegis, dict)
    ratio = aegis.get("throughput_ratio_to_floor")
    results["goal"] = {
        "throughput_at_least_0.8x_floor": None if ratio is None else ratio >= GOAL_THROUGHPUT_RATIO,
        "zero_lost": aegis.get("lost") == 0,
        "zero_doubled": aegis.get("doubled") == 0,
    }
    return results


async def burst(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, object]:
    hs = Homeserver(workdir / "synapse-default-limits", default_rate_limits=True)
    hs.start()
    driver = await Driver.create(hs, workdir)
    await exempt_from_rate_limits(hs, driver.user_id)
    bots = contenders(workdir / "burst", database_url)
    results: dict[str, object] = {}
    try:
        for bot in bots:
            if not await prepare(bot, hs, driver, "!ping warm-up"):
                results[bot.name] = {"error": bot.error}
                continue
            since = time.perf_counter()
            commands = [
                (await driver.send(bot.room_id, bot.command(f"!ping burst {i:02d}")))[0]
                for i in range(args.burst)
            ]
            await collect(driver, bot, commands, since, args.idle, args.cap, args.settle)
            bot.stop()
            results[bot.name] = {**tally(driver, bot, commands, since), "error": None}
            print(f"burst {bot.name}: {results[bot.name]}", file=sys.stderr)
    finally:
        for bot in bots:
            bot.stop()
        await driver.close()
        hs.stop()
    return results


def num(value: object, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and value is not None else "—"


def table(title: str, results: Any, ratio: bool) -> str:
    lines = [
        f"\n{title}",
        f"{'contender':22} {'sent':>5} {'answered':>8} {'lost':>5} {'doubled':>7} "
        f"{'last reply s':>12} {'per s':>7}" + (f" {'ratio':>6}" if ratio else ""),
    ]
    for name, result in results.items():
        if name == "goal" or not isinstance(result, dict):
            continue
        if result.get("error"):
            lines.append(f"{name:22} NOT MEASURED: {str(result['error']).splitlines()[0]}")
            continue
        doubled = result["doubled"]
        lines.append(
            f"{name:22} {result['sent']:>5} {result['answered']:>8} {result['lost']:>5} "
            f"{'?' if doubled is None else doubled:>7} "
            f"{num(result.get('last_reply_s'), '12.1f'):>12} "
            f"{num(result.get('throughput_per_s'), '7.1f'):>7}"
            + (f" {num(result.get('throughput_ratio_to_floor'), '6.2f'):>6}" if ratio else "")
        )
    if "goal" in results:
        lines.append(f"goal: {results['goal']}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--idle", type=float, default=60.0, help="quiet seconds that end a run")
    parser.add_argument("--cap", type=float, default=900.0, help="longest wait per contender")
    parser.add_argument("--settle", type=float, default=5.0, help="wait for doubles at the end")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--postgres", default="", help="run Aegis on this PostgreSQL server")
    parser.add_argument("--output", default="backlog", help="bench/results/<name>.json")
    parser.add_argument("--note", default="", help="stored with the results, e.g. 'trial run'")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": machine(),
        "note": args.note,
        "rooms": "unencrypted, for every contender",
        "aegis_database": "postgresql" if args.postgres else "sqlite",
        "commands": args.commands,
        "burst_commands": args.burst,
        "idle_s": args.idle,
    }
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        workdir = Path(tmp)
        urls = [f"sqlite+aiosqlite:///{tmp}/backlog.db", f"sqlite+aiosqlite:///{tmp}/burst.db"]
        if args.postgres:
            urls = [await create_pg(args.postgres), await create_pg(args.postgres)]
        try:
            for url in urls:
                db = Database(url)
                await db.migrate()
                await db.close()
            report["backlog"] = await backlog(args, workdir, urls[0])
            print(
                table(f"backlog: {args.commands} commands sent while down", report["backlog"], True)
            )
            if not args.skip_burst:
                report["burst"] = await burst(args, workdir, urls[1])
                print(
                    table(
                        f"burst: {args.burst} commands, Synapse default rate limits",
                        report["burst"],
                        False,
                    )
                )
        finally:
            if args.postgres:
                for url in urls:
                    await drop_pg(url)
    print(f"written to {write_result(args.output, report)}")


if __name__ == "__main__":
    asyncio.run(main())
