"""Reading dates and times as coordinators type them, in English, Dutch and French.

dateparser does the work; two gaps are closed by rewriting the text first, kept minimal:

* Dutch and French hour forms ("14u", "9u30", "14h", "14 uur") become "14:00" / "9:30",
  because dateparser misreads them ("morgen 9u30" came out as 20:30, "vrijdag 14 uur" as
  midnight a week later). A number right after
  "in"/"over"/"dans"/"binnen" is a duration ("in 3h"), so it is left alone.
* "volgende"/"komende" before a Dutch weekday and "prochain(e)" around a French one are
  dropped: dateparser does not know them, and with dates preferred from the future a bare
  weekday already means what English "next friday" means to dateparser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dateparser

from commands.errors import ArgumentError, shown

if TYPE_CHECKING:
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


def normalise(text: str) -> str:
    def hour(match: re.Match[str]) -> str:
        before = text[: match.start()].split()
        if before and before[-1].lower() in _DURATION_WORDS:
            return match.group(0)
        return f"{match.group(1)}:{match.group(2) or '00'}"

    text = _HOUR.sub(hour, text)
    for pattern in _NEXT_WEEKDAY:
        text = pattern.sub(r"\1", text)
    return text


def parse_when(text: str, ctx: Context) -> datetime:
    """Read `text` in the room's timezone, relative to the event's time; answer in UTC."""
    if not text.strip() or len(text) > _MAX_LENGTH:
        raise ArgumentError(f"{shown(text)} is not a date or time I can read")
    settings = {
        "TIMEZONE": ctx.tz.key,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY",
        "RELATIVE_BASE": ctx.now.astimezone(ctx.tz).replace(tzinfo=None),
    }
    try:
        parsed = dateparser.parse(normalise(text), languages=LANGUAGES, settings=settings)
    # dateparser is a third-party heuristic over arbitrary input; whatever it trips over is
    # still just "not a date" to the sender.
    except Exception:
        parsed = None
    if parsed is None:
        raise ArgumentError(
            f"{shown(text)} is not a date or time I can read "
            "(try 'tomorrow 9:00', 'volgende vrijdag 14u' or '2026-12-03 10:00')"
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ctx.tz)
    return parsed.astimezone(UTC)
