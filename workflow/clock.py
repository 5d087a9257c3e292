"""Time comes from a clock object, so tests can move it without sleeping; and it is shown to
people in one way, whichever layer writes it down."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

END_OF_DAY = time(23, 59, 59)
"""Where an end typed as a bare date lands: the last second of that day, so it stays on that
date wherever it is shown or counted."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def human(moment: datetime, tz: ZoneInfo) -> str:
    """`Tue 08 Dec 2026 12:00` in local time; `Tue 08 Dec 2026 end of day` for the last second
    of a day. The one format of every time people read: replies through
    `commands.formatting.when`, and the timeline text the workflow writes itself."""
    local = moment.astimezone(tz)
    if local.time() >= END_OF_DAY:
        return f"{local:%a %d %b %Y} end of day"
    return f"{local:%a %d %b %Y %H:%M}"
