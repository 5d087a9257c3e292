"""How dates, ages, levels and dossiers read in replies: local time, short and unambiguous."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from workflow.clock import human
from workflow.model import Dossier, ThreatLevel


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    """`Tue 08 Dec 2026 12:00`, local: the one way a time reads (workflow.clock.human)."""
    if moment is None:
        return "—"
    return human(moment, tz)


def count(n: int, one: str, many: str | None = None) -> str:
    """`1 proposal`, `2 proposals`, `0 proposals`: a number with its noun agreeing."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def age(since: datetime, now: datetime) -> str:
    """`3d`, `5h`, `12m`: how old an assessment is, at a glance."""
    elapsed = max(now - since, timedelta(0))
    if elapsed >= timedelta(days=1):
        return f"{elapsed.days}d"
    if elapsed >= timedelta(hours=1):
        return f"{int(elapsed.total_seconds() // 3600)}h"
    return f"{int(elapsed.total_seconds() // 60)}m"


def level(dossier: Dossier, now: datetime) -> str:
    if dossier.level is None or dossier.level_at is None:
        return "no assessment"
    return f"{ThreatLevel(dossier.level).label}, {age(dossier.level_at, now)} old"


def period(dossier: Dossier, tz: ZoneInfo) -> str:
    if dossier.starts_at is None and dossier.ends_at is None:
        return "—"
    return f"{when(dossier.starts_at, tz)} → {when(dossier.ends_at, tz)}"


def one_line(dossier: Dossier, now: datetime) -> str:
    """`D-2026-0001 · person/head-of-state · Visit of X · 3 SERIOUS… · open`."""
    return (
        f"{dossier.ref} · {dossier.kind}/{dossier.category} · {dossier.title} · "
        f"{level(dossier, now)} · {dossier.status}"
    )
