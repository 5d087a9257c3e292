"""Dates as coordinators type them, in three languages, read in Brussels time, stored in UTC.

The fixed now is Wednesday 2026-03-04 11:30 in Brussels (10:30 UTC, winter time).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commands import ArgumentError
from commands.dates import normalise, parse_when
from tests.commands_fakes import make_context


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
        ("in 3 days", utc(2026, 3, 7, 10, 30)),
        ("morgen 9u30", utc(2026, 3, 5, 8, 30)),
        ("demain 9h30", utc(2026, 3, 5, 8, 30)),
        ("vrijdag om 14 uur", utc(2026, 3, 6, 13, 0)),
        ("prochain lundi 7h45", utc(2026, 3, 9, 6, 45)),
        ("in 3h", utc(2026, 3, 4, 13, 30)),
        ("dans 2 jours", utc(2026, 3, 6, 10, 30)),
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
