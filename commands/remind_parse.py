"""Reading `!remind <who> <when> <text>` as people type it, in English, Dutch and French.

`<who>` is `me`, `@user:server` or `room`. `<when>` is one of:

* `when P-5 is decided` (`wanneer P-5 beslist is`, `quand P-5 est décidé`);
* `1 day before D-2026-0001 starts` (`1 dag voor … begint`, `1 jour avant … commence`);
* a recurrence, `every monday 9:00` (`elke maandag 9u`, `chaque lundi 9h`, also `every day`,
  `every weekday`, `every monday and thursday`): a time of day is required;
* any time the date parser reads (commands/dates.py), quoted or not. Unquoted, the longest
  leading run of words that reads as a time is the time and the rest is the text: the
  parser refuses a phrase with words it does not know, so "tomorrow 9:00 brief" is tried
  whole, then "tomorrow 9:00" is taken.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from commands.arguments import parse_user_id
from commands.context import Context
from commands.dates import parse_when
from commands.errors import ArgumentError, shown
from commands.tokens import TokenError, tokenize
from workflow.reminder_model import ReminderRequest, Trigger

# The longest time phrase tried ("next friday at 14:00" is four words; "3 december 2026
# at 10:00" five).
MAX_WHEN_WORDS = 8
MAX_TEXT = 500
WHEN_EXAMPLES = "try 'in 10 minutes …', 'tomorrow 9:00 …', 'morgen 9u …' or 'demain 9h …'"

_ME = {"me", "mij", "moi"}
_ROOM = {"room", "kamer", "salon"}

_DECIDED = re.compile(
    r"^(?:when|wanneer|quand)\s+P-(?P<id>\d{1,9})\s+"
    r"(?:is\s+decided|beslist\s+is|is\s+beslist|est\s+d[ée]cid[ée]e?)(?![\w-])[.:,]?\s*(?P<text>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_UNITS = {
    "m": 1,
    "min": 1,
    "minute": 1,
    "minuut": 1,
    "minuten": 1,
    "h": 60,
    "u": 60,
    "hour": 60,
    "uur": 60,
    "heure": 60,
    "d": 24 * 60,
    "day": 24 * 60,
    "dag": 24 * 60,
    "dagen": 24 * 60,
    "jour": 24 * 60,
    "w": 7 * 24 * 60,
    "week": 7 * 24 * 60,
    "weken": 7 * 24 * 60,
    "semaine": 7 * 24 * 60,
}
_BEFORE_START = re.compile(
    r"^(?P<n>\d{1,4})\s*(?P<unit>[a-z]+)\s+(?:before|voor|vóór|avant)\s+"
    r"(?P<ref>D-\d{4}-\d{1,6})\s+(?:starts|begint|start|commence|débute)(?![\w-])[.:,]?"
    r"\s*(?P<text>.*)$",
    re.IGNORECASE | re.DOTALL,
)

_WEEKDAYS = {
    "MO": ("monday", "maandag", "lundi"),
    "TU": ("tuesday", "dinsdag", "mardi"),
    "WE": ("wednesday", "woensdag", "mercredi"),
    "TH": ("thursday", "donderdag", "jeudi"),
    "FR": ("friday", "vrijdag", "vendredi"),
    "SA": ("saturday", "zaterdag", "samedi"),
    "SU": ("sunday", "zondag", "dimanche"),
}
_DAY_WORDS: dict[str, tuple[str, ...]] = {
    **{name: (code,) for code, names in _WEEKDAYS.items() for name in names},
    **{word: () for word in ("day", "dag", "jour")},
    **{word: ("MO", "TU", "WE", "TH", "FR") for word in ("weekday", "werkdag", "jour ouvrable")},
}
_DAY = "|".join(sorted((re.escape(w) + "s?" for w in _DAY_WORDS), key=len, reverse=True))
_EVERY = re.compile(
    rf"^(?:every|each|elke|iedere|chaque|tous\s+les|toutes\s+les)\s+"
    rf"(?P<days>(?:{_DAY})(?:\s*(?:,|and|en|et)\s*(?:{_DAY}))*)(?![\w-])\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_TIME = re.compile(
    r"^(?:(?:at|om|à|a)\s+)?(?P<hour>\d{1,2})(?:(?::|h|u)(?P<minute>\d{2})?|\s?uur|(?=\s?[ap]m))"
    r"\s?(?P<half>[ap]m)?(?![\w-])\s*(?P<text>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def parse_request(source: str, ctx: Context) -> ReminderRequest:
    """The request `!remind` was given (everything after the command's name)."""
    if not source.strip():
        raise ArgumentError("say who, when and what: !remind me in 10 minutes call back")
    who, _, rest = source.strip().partition(" ")
    target = _target(who, ctx)
    rest = rest.strip()
    if not rest:
        raise ArgumentError("say when, and what to remind of")
    if decided := _DECIDED.match(rest):
        return ReminderRequest(
            target,
            ctx.room_id,
            _text(decided["text"], required=False),
            Trigger.DECIDED,
            proposal_id=int(decided["id"]),
        )
    if before := _BEFORE_START.match(rest):
        return ReminderRequest(
            target,
            ctx.room_id,
            _text(before["text"], required=False),
            Trigger.START,
            dossier_ref=_dossier_ref(before["ref"]),
            offset=_offset(before["n"], before["unit"]),
        )
    if every := _EVERY.match(rest):
        rule, text = _recurrence(every["days"], every["rest"])
        return ReminderRequest(target, ctx.room_id, _text(text), Trigger.AT, rrule=rule)
    at, text = split_when(rest, ctx)
    return ReminderRequest(target, ctx.room_id, _text(text), Trigger.AT, at=at)


def _target(word: str, ctx: Context) -> str | None:
    if word.lower() in _ME:
        return ctx.actor
    if word.lower() in _ROOM:
        return None
    if word.startswith("@"):
        return parse_user_id(word, ctx)
    raise ArgumentError(f"{shown(word)}: say who to remind: me, @user:server or room")


def _text(text: str, required: bool = True) -> str:
    text = text.strip()
    if required and not text:
        raise ArgumentError("say what to remind of, after the time")
    if len(text) > MAX_TEXT:
        raise ArgumentError(f"the text is {len(text)} characters long; at most {MAX_TEXT}")
    return text


def _dossier_ref(text: str) -> str:
    _, year, number = text.upper().split("-")
    return f"D-{year}-{int(number):04d}"


def _offset(count: str, unit: str) -> timedelta:
    word = unit.lower()
    size = _UNITS.get(word) or _UNITS.get(word.removesuffix("s"))
    if size is None:
        raise ArgumentError(f"{shown(unit)} is not a unit: minutes, hours, days or weeks")
    return timedelta(minutes=int(count) * size)


def _recurrence(days: str, rest: str) -> tuple[str, str]:
    codes: list[str] = []
    for word in re.split(r"\s*(?:,|\band\b|\ben\b|\bet\b)\s*", days.strip(), flags=re.I):
        key = word.lower()
        found = _DAY_WORDS.get(key, _DAY_WORDS.get(key.removesuffix("s")))
        codes += found or ()
    time = _TIME.match(rest.strip())
    if time is None:
        raise ArgumentError("say at what time, such as 'every monday 9:00', 'elke maandag 9u'")
    hour, minute = int(time["hour"]), int(time["minute"] or 0)
    if time["half"]:
        hour = hour % 12 + (12 if time["half"].lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ArgumentError(f"{hour}:{minute:02d} is not a time of day")
    at = f"BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"
    if codes:
        rule = f"FREQ=WEEKLY;BYDAY={','.join(dict.fromkeys(codes))};{at}"
    else:
        rule = f"FREQ=DAILY;{at}"
    return rule, time["text"]


def split_when(source: str, ctx: Context) -> tuple[datetime, str]:
    """(when, text): a quoted leading time, or the longest leading run of words that reads
    as one. Trailing words that do not change the time ("in 3 hours from ana": the parser
    skips "from"; "in 2 hours second") are left to the text."""
    if source[:1] in "\"'“„‘«":
        try:
            first = tokenize(source)[0]
        except TokenError as wrong:
            raise ArgumentError(str(wrong)) from None
        return parse_when(first.text, ctx), source[first.end :]
    ends = [match.end() for match in re.finditer(r"\S+", source)]
    for count in range(min(len(ends), MAX_WHEN_WORDS), 0, -1):
        at = _reads_as_time(source[: ends[count - 1]], ctx)
        if at is None:
            continue
        while count > 1 and _reads_as_time(source[: ends[count - 2]], ctx) == at:
            count -= 1
        if count == len(ends):
            raise ArgumentError("say what to remind of, after the time")
        return at, source[ends[count - 1] :]
    raise ArgumentError(f"no time at the start of {shown(source)} ({WHEN_EXAMPLES})")


def _reads_as_time(phrase: str, ctx: Context) -> datetime | None:
    try:
        return parse_when(phrase, ctx)
    except ArgumentError:
        return None
