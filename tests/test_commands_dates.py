"""Dates as coordinators type them, in three languages, read in Brussels time, stored in UTC.

The fixed now is Wednesday 2026-03-04 11:30 in Brussels (10:30 UTC, winter time).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commands import ArgumentError
from commands.dates import Bound, normalise, parse_time, parse_when
from tests.commands_fakes import BRUSSELS, make_context


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("next friday 14:00", utc(2026, 3, 6, 13, 0)),
        ("volgende vrijdag 14u", utc(2026, 3, 6, 13, 0)),
        ("vendredi prochain 14h", utc(2026, 3, 6, 13, 0)),
        ("volgende maandag 9u", utc(2026, 3, 9, 8, 0)),
        ("tomorrow 9:00", utc(2026, 3, 5, 8, 0)),
        ("2026-12-03 10:00", utc(2026, 12, 3, 9, 0)),
        ("in 3 days", utc(2026, 3, 6, 23, 0)),  # a day: its start, never the clock time
        ("morgen 9u30", utc(2026, 3, 5, 8, 30)),
        ("demain 9h30", utc(2026, 3, 5, 8, 30)),
        ("vrijdag om 14 uur", utc(2026, 3, 6, 13, 0)),
        ("prochain lundi 7h45", utc(2026, 3, 9, 6, 45)),
        ("in 3h", utc(2026, 3, 4, 13, 30)),
        ("dans 2 jours", utc(2026, 3, 5, 23, 0)),
        ("03/12/2026 10:00", utc(2026, 12, 3, 9, 0)),  # Belgian day/month order
        ("2026-07-03 10:00", utc(2026, 7, 3, 8, 0)),  # summer time: UTC+2
    ],
)
def test_phrases(text: str, expected: datetime) -> None:
    ctx, _ = make_context()
    assert parse_when(text, ctx) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14u", "14:00"),
        ("9u30", "9:30"),
        ("14H", "14:00"),
        ("14 uur", "14:00"),
        ("in 3h", "in 3h"),
        ("over 2u", "over 2u"),
        ("volgende vrijdag", "vrijdag"),
        ("vendredi prochain", "vendredi"),
        ("10:30", "10:30"),
        ("D-2026", "D-2026"),
        ("binnen 14 dagen", "over 14 dagen"),
    ],
)
def test_normalisation_is_minimal(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize("text", ["someday", "", "   ", "x" * 200, "\x00\x01"])
def test_unreadable_is_an_argument_error_quoting_the_input(text: str) -> None:
    ctx, _ = make_context()
    with pytest.raises(ArgumentError) as raised:
        parse_when(text, ctx)
    assert "is not a date or time I can read" in str(raised.value)
    assert repr(text[:20]).rstrip("'") in str(raised.value)


# A date without a time: the whole day, whatever the clock says when the command is sent.
# Brussels is UTC+1 in March, so local midnight is 23:00 UTC the day before.
@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("tomorrow", utc(2026, 3, 4, 23, 0), utc(2026, 3, 5, 22, 59, 59)),
        ("morgen", utc(2026, 3, 4, 23, 0), utc(2026, 3, 5, 22, 59, 59)),
        ("demain", utc(2026, 3, 4, 23, 0), utc(2026, 3, 5, 22, 59, 59)),
        ("today", utc(2026, 3, 3, 23, 0), utc(2026, 3, 4, 22, 59, 59)),
        ("vandaag", utc(2026, 3, 3, 23, 0), utc(2026, 3, 4, 22, 59, 59)),
        ("aujourd'hui", utc(2026, 3, 3, 23, 0), utc(2026, 3, 4, 22, 59, 59)),
        ("next friday", utc(2026, 3, 5, 23, 0), utc(2026, 3, 6, 22, 59, 59)),
        ("volgende vrijdag", utc(2026, 3, 5, 23, 0), utc(2026, 3, 6, 22, 59, 59)),
        ("vendredi prochain", utc(2026, 3, 5, 23, 0), utc(2026, 3, 6, 22, 59, 59)),
        ("2026-12-08", utc(2026, 12, 7, 23, 0), utc(2026, 12, 8, 22, 59, 59)),
        ("08/12/2026", utc(2026, 12, 7, 23, 0), utc(2026, 12, 8, 22, 59, 59)),
        ("31 december", utc(2026, 12, 30, 23, 0), utc(2026, 12, 31, 22, 59, 59)),
        ("31 décembre", utc(2026, 12, 30, 23, 0), utc(2026, 12, 31, 22, 59, 59)),
        ("in 10 days", utc(2026, 3, 13, 23, 0), utc(2026, 3, 14, 22, 59, 59)),
        ("over 14 dagen", utc(2026, 3, 17, 23, 0), utc(2026, 3, 18, 22, 59, 59)),
        ("binnen 14 dagen", utc(2026, 3, 17, 23, 0), utc(2026, 3, 18, 22, 59, 59)),
        ("dans 14 jours", utc(2026, 3, 17, 23, 0), utc(2026, 3, 18, 22, 59, 59)),
        ("2026-07-03", utc(2026, 7, 2, 22, 0), utc(2026, 7, 3, 21, 59, 59)),  # summer: UTC+2
    ],
)
def test_a_date_without_a_time_is_the_start_or_the_end_of_that_day(
    text: str, start: datetime, end: datetime
) -> None:
    ctx, _ = make_context()
    assert parse_when(text, ctx, Bound.START) == start
    assert parse_when(text, ctx, Bound.END) == end


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 3h", utc(2026, 3, 4, 13, 30)),
        ("over 2 uur", utc(2026, 3, 4, 12, 30)),
        ("binnen 2 uur", utc(2026, 3, 4, 12, 30)),
        ("dans 2 heures", utc(2026, 3, 4, 12, 30)),
        ("in 30 minutes", utc(2026, 3, 4, 11, 0)),
        ("now", utc(2026, 3, 4, 10, 30)),
        ("tomorrow 9:00", utc(2026, 3, 5, 8, 0)),
        ("morgen 9u30", utc(2026, 3, 5, 8, 30)),
        ("demain 14h", utc(2026, 3, 5, 13, 0)),
        ("2026-12-08 00:00", utc(2026, 12, 7, 23, 0)),  # midnight written out is midnight
    ],
)
def test_a_time_given_or_a_duration_under_a_day_is_kept_for_a_start_and_an_end(
    text: str, expected: datetime
) -> None:
    ctx, _ = make_context()
    assert parse_when(text, ctx, Bound.START) == expected
    assert parse_when(text, ctx, Bound.END) == expected


@pytest.mark.parametrize("text", ["tomorrow", "morgen", "demain", "2026-12-08"])
def test_a_moment_that_needs_a_time_refuses_a_bare_date(text: str) -> None:
    ctx, _ = make_context()
    with pytest.raises(ArgumentError) as raised:
        parse_time(text, ctx)
    assert "has no time of day" in str(raised.value)
    assert parse_time(f"{text} 14:00", ctx).astimezone(BRUSSELS).hour == 14
