"""Agenda windows in local time (bot.timezone, Brussels): the weekly one runs from Monday of
the previous calendar week to Sunday of the next, whatever the weekday; the monthly one is
the calendar month. Month edges, a leap year and both daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.chat import BRUSSELS
from workflow.agenda import month_window, week_window


def local(moment: datetime) -> str:
    return moment.astimezone(BRUSSELS).strftime("%a %d %b %Y %H:%M:%S %Z")


def at(text: str) -> datetime:
    """A local Brussels time."""
    return datetime.fromisoformat(text).replace(tzinfo=BRUSSELS)


LAST = "23:59:59"


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        # Every day of one week gives the same window.
        *(
            (at(f"2026-11-{day} 10:00"), "Mon 16 Nov 2026", "Sun 06 Dec 2026")
            for day in range(23, 30)
        ),
        (at("2026-11-23 00:00"), "Mon 16 Nov 2026", "Sun 06 Dec 2026"),
        (at("2026-11-29 23:59"), "Mon 16 Nov 2026", "Sun 06 Dec 2026"),
        (at("2026-11-30 00:00"), "Mon 23 Nov 2026", "Sun 13 Dec 2026"),
        # Sunday 23:30 UTC is already Monday in Brussels: the local date counts.
        (datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "Mon 23 Nov 2026", "Sun 13 Dec 2026"),
        # Across the new year.
        (at("2026-12-31 09:00"), "Mon 21 Dec 2026", "Sun 10 Jan 2027"),
    ],
)
def test_weekly_window_is_three_calendar_weeks(moment: datetime, start: str, end: str) -> None:
    first, last = week_window(moment, BRUSSELS)
    assert local(first) == f"{start} 00:00:00 CET"
    assert local(last) == f"{end} {LAST} CET"
    assert first <= moment <= last


@pytest.mark.parametrize(
    ("moment", "start", "end", "hours"),
    [
        # Summer time from Sunday 29 March 2026: the window is an hour short.
        (at("2026-03-25 10:00"), "Mon 16 Mar 2026 00:00:00 CET", "Sun 05 Apr 2026", 21 * 24 - 1),
        # Winter time from Sunday 25 October 2026: an hour long.
        (at("2026-10-28 10:00"), "Mon 19 Oct 2026 00:00:00 CEST", "Sun 08 Nov 2026", 21 * 24 + 1),
    ],
)
def test_weekly_window_across_daylight_saving(
    moment: datetime, start: str, end: str, hours: int
) -> None:
    first, last = week_window(moment, BRUSSELS)
    assert local(first) == start
    zone = "CEST" if moment.month == 3 else "CET"
    assert local(last) == f"{end} {LAST} {zone}"
    assert last - first == timedelta(hours=hours) - timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        (at("2026-11-01 00:00"), "Sun 01 Nov 2026 00:00:00 CET", f"Mon 30 Nov 2026 {LAST} CET"),
        (at("2026-11-30 23:59"), "Sun 01 Nov 2026 00:00:00 CET", f"Mon 30 Nov 2026 {LAST} CET"),
        # 30 November 23:30 UTC is 1 December in Brussels.
        (
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            "Tue 01 Dec 2026 00:00:00 CET",
            f"Thu 31 Dec 2026 {LAST} CET",
        ),
        (at("2026-12-31 12:00"), "Tue 01 Dec 2026 00:00:00 CET", f"Thu 31 Dec 2026 {LAST} CET"),
        (at("2027-01-01 00:00"), "Fri 01 Jan 2027 00:00:00 CET", f"Sun 31 Jan 2027 {LAST} CET"),
        (at("2028-02-15 10:00"), "Tue 01 Feb 2028 00:00:00 CET", f"Tue 29 Feb 2028 {LAST} CET"),
        (at("2027-02-15 10:00"), "Mon 01 Feb 2027 00:00:00 CET", f"Sun 28 Feb 2027 {LAST} CET"),
        # The month the clocks change in, both ways.
        (at("2026-03-15 10:00"), "Sun 01 Mar 2026 00:00:00 CET", f"Tue 31 Mar 2026 {LAST} CEST"),
        (at("2026-10-15 10:00"), "Thu 01 Oct 2026 00:00:00 CEST", f"Sat 31 Oct 2026 {LAST} CET"),
    ],
)
def test_monthly_window_is_the_calendar_month(moment: datetime, start: str, end: str) -> None:
    first, last = month_window(moment, BRUSSELS)
    assert (local(first), local(last)) == (start, end)
