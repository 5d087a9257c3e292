"""Reading dates and times as coordinators type them, in English, Dutch and French.

dateparser does the work; two gaps are closed by rewriting the text first, kept minimal:

* Dutch and French hour forms ("14u", "9u30", "14h", "14 uur") become "14:00" / "9:30",
  because dateparser misreads them ("morgen 9u30" came out as 20:30, "vrijdag 14 uur" as
  midnight a week later). A number right after
  "in"/"over"/"dans"/"binnen" is a duration ("in 3h"), so it is left alone.
* "volgende"/"komende" before a Dutch weekday and "prochain(e)" around a French one are
  dropped: dateparser does not know them, and with dates preferred from the future a bare
  weekday already means what English "next friday" means to dateparser.
* "binnen" ("within") becomes "over": "binnen 14 dagen" is a deadline 14 days out, which
  dateparser only reads in the "over 14 dagen" form.

A date typed without a time never takes the current clock time: dateparser fills the time
of "tomorrow" or "in 10 days" from the moment it counts from, which would make a start or
an end depend on when the command happened to be sent. Such a date means a whole day: a
start is the first moment of it (00:00 local), an end the last (23:59:59 local, shown as
"end of day"), see `Bound`. Only durations shorter than a day ("in 3h", "over 2 uur",
"dans 30 minutes") and "now" keep the clock time, since that is what they are about.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import dateparser

from commands.errors import ArgumentError, shown
from workflow.clock import END_OF_DAY

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from commands.context import Context

LANGUAGES = ["en", "nl", "fr"]
# Longer text is no date; refusing it early keeps dateparser from chewing on garbage.
_MAX_LENGTH = 80

_HOUR = re.compile(r"(?<![\w:.])(\d{1,2})(?:[uh]|\s?uur)(\d{2})?(?!\w)", re.IGNORECASE)
_DURATION_WORDS = ("in", "over", "dans", "binnen")
_NL_DAYS = "maandag|dinsdag|woensdag|donderdag|vrijdag|zaterdag|zondag"
_FR_DAYS = "lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche"
_NEXT_WEEKDAY = (
    re.compile(rf"\b(?:volgende|komende)\s+({_NL_DAYS})\b", re.IGNORECASE),
    re.compile(rf"\b({_FR_DAYS})\s+prochaine?\b", re.IGNORECASE),
    re.compile(rf"\bprochaine?\s+({_FR_DAYS})\b", re.IGNORECASE),
)
_WITHIN = re.compile(r"\bbinnen\b", re.IGNORECASE)

# "in 3h", "over 2 uur", "dans 30 minutes", "in an hour": counted from the clock, so they
# keep it. Day-long and longer durations ("in 10 days") name a day and do not.
_SHORT_DURATION = re.compile(
    r"\b(?:in|over|dans|binnen)\s+(?:\d+|an?|een|une?)\s*"
    r"(?:h|hrs?|hours?|u|uur|uren|heures?|m|mins?|minutes?|minuten|s|secs?|seconds?|seconden|"
    r"secondes?|kwartier|quarter)\b",
    re.IGNORECASE,
)
_NOW = re.compile(r"^\s*(?:now|nu|maintenant|right now|immediately|direct|meteen)\s*$", re.I)
# A clock time written out: "14:00", "9am", "noon". dateparser gives 00:00 to a date with no
# time at all, so midnight counts as given only when it is written.
_CLOCK = re.compile(
    r"\d{1,2}:\d{2}|\b\d{1,2}\s*(?:am|pm)\b|\b(?:noon|midnight|middag|middernacht|midi|minuit)\b",
    re.IGNORECASE,
)


class Bound(enum.Enum):
    """What a date is for, which decides the time of day when none is typed."""

    START = "start"
    """The first moment of the day: a measure starting "tomorrow" is in force all day."""
    END = "end"
    """The last moment of the day: a measure ending "31 december" covers all of it."""


def normalise(text: str) -> str:
    def hour(match: re.Match[str]) -> str:
        before = text[: match.start()].split()
        if before and before[-1].lower() in _DURATION_WORDS:
            return match.group(0)
        return f"{match.group(1)}:{match.group(2) or '00'}"

    text = _HOUR.sub(hour, text)
    for pattern in _NEXT_WEEKDAY:
        text = pattern.sub(r"\1", text)
    return _WITHIN.sub("over", text)


def _parse(text: str, tz: ZoneInfo, base: datetime) -> datetime | None:
    settings: Any = {
        "TIMEZONE": tz.key,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY",
        "RELATIVE_BASE": base,
    }
    try:
        parsed = dateparser.parse(text, languages=LANGUAGES, settings=settings)
    # dateparser is a third-party heuristic over arbitrary input; whatever it trips over is
    # still just "not a date" to the sender.
    except Exception:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _has_time(text: str, parsed: datetime, tz: ZoneInfo, base: datetime) -> bool:
    """Whether the text gives a time of day. Read a second time from another hour of the same
    day: a time that moves with the hour counted from was filled in by dateparser."""
    if _NOW.match(text) or _SHORT_DURATION.search(text):
        return True
    other = _parse(text, tz, base + timedelta(hours=12 if base.hour < 12 else -12))
    if other is None or other.astimezone(tz).time() != parsed.astimezone(tz).time():
        return False
    return parsed.astimezone(tz).time() != time(0) or bool(_CLOCK.search(text))


def _read(text: str, ctx: Context) -> tuple[datetime, bool]:
    """(the moment, local; whether the text gave its time of day)."""
    if not text.strip() or len(text) > _MAX_LENGTH:
        raise ArgumentError(f"{shown(text)} is not a date or time I can read")
    normal = normalise(text)
    base = ctx.now.astimezone(ctx.tz).replace(tzinfo=None)
    parsed = _parse(normal, ctx.tz, base)
    if parsed is None:
        raise ArgumentError(
            f"{shown(text)} is not a date or time I can read "
            "(try 'tomorrow 9:00', 'volgende vrijdag 14u' or '2026-12-03 10:00')"
        )
    return parsed.astimezone(ctx.tz), _has_time(normal, parsed, ctx.tz, base)


def parse_when(text: str, ctx: Context, bound: Bound = Bound.START) -> datetime:
    """Read `text` in the room's timezone, relative to the event's time; answer in UTC. A date
    without a time is the start or the end of that day, as `bound` says."""
    moment, timed = _read(text, ctx)
    if not timed:
        moment = datetime.combine(
            moment.date(), END_OF_DAY if bound is Bound.END else time(0), ctx.tz
        )
    return moment.astimezone(UTC)


def parse_start(text: str, ctx: Context) -> datetime:
    return parse_when(text, ctx, Bound.START)


def parse_end(text: str, ctx: Context) -> datetime:
    return parse_when(text, ctx, Bound.END)


def parse_time(text: str, ctx: Context) -> datetime:
    """A moment that needs its time of day, such as where a meeting moves to: a bare date
    would put it at midnight."""
    moment, timed = _read(text, ctx)
    if not timed:
        raise ArgumentError(f"{shown(text)} has no time of day (try '{text.strip()} 14:00')")
    return moment.astimezone(UTC)
