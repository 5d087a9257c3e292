"""A meeting's recurrence rule (RFC 5545 RRULE, as configured) in words people use:
"every Tuesday at 10:00", "every first Monday of the month at 14:00", "every day at 08:30".

The shapes meetings take are described exactly; any other rule still reads as words (its
frequency), never as the rule itself: `!meeting list` shows the next occurrence beside it."""

from __future__ import annotations

DAYS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR"]
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
FREQUENCIES = {
    "YEARLY": "yearly",
    "MONTHLY": "monthly",
    "WEEKLY": "weekly",
    "DAILY": "daily",
    "HOURLY": "hourly",
    "MINUTELY": "minute-by-minute",
    "SECONDLY": "second-by-second",
}
UNITS = {"DAILY": "days", "WEEKLY": "weeks", "MONTHLY": "months"}
# Parts the exact descriptions account for; a rule with any other is described loosely.
KNOWN = {"FREQ", "INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND", "BYMONTHDAY", "BYSETPOS"}


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _nth(number: int) -> str:
    if number == -1:
        return "last day"
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10)
    return f"{number}{suffix or 'th'}"


def _parts(rule: str) -> dict[str, str]:
    text = rule.strip().removeprefix("RRULE:").removeprefix("rrule:")
    pairs = (part.partition("=") for part in text.split(";") if part.strip())
    return {key.strip().upper(): value.strip().upper() for key, _, value in pairs}


def _numbers(value: str | None, default: int) -> list[int]:
    return sorted(int(n) for n in value.split(",")) if value else [default]


def _times(parts: dict[str, str]) -> str:
    """Hours and minutes unstated are those of the rule's anchor, a midnight."""
    minutes = _numbers(parts.get("BYMINUTE"), 0)
    times = [f"{h:02d}:{m:02d}" for h in _numbers(parts.get("BYHOUR"), 0) for m in minutes]
    return "at " + _and(times)


def _day_of_month(byday: str, setpos: str | None) -> str | None:
    """ "first Monday", "last Friday", or None when it is not one such day."""
    if "," in byday:
        return None
    number, day = byday[:-2], byday[-2:]
    if setpos and not number:
        number = setpos
    if day not in DAYS or not number.lstrip("+-").isdigit():
        return None
    ordinal = ORDINALS.get(int(number))
    return f"{ordinal} {DAYS[day]}" if ordinal else None


def _exact(parts: dict[str, str]) -> str | None:
    freq, byday = parts.get("FREQ", ""), parts.get("BYDAY", "")
    interval = int(parts.get("INTERVAL", "1"))
    if set(parts) - KNOWN or parts.get("BYSECOND", "0") != "0" or not interval:
        return None
    days = byday.split(",") if byday else []
    if any(day not in DAYS for day in days) and freq != "MONTHLY":
        return None
    if days == WEEKDAYS:
        named = "weekday (Monday to Friday)"
    else:
        named = _and([DAYS[d] for d in days]) if days and freq != "MONTHLY" else ""
    every = "every" if interval == 1 else f"every {interval} {UNITS.get(freq, '')}"
    if freq == "DAILY" and "BYMONTHDAY" not in parts:
        if named:
            return f"every {named}" if interval == 1 else None
        return "every day" if interval == 1 else every
    if freq == "WEEKLY" and "BYMONTHDAY" not in parts:
        named = named or "Monday"  # the anchor's weekday
        if interval == 1:
            return f"every {named}"
        return f"every other {named}" if interval == 2 else f"{every} on {named}"
    if freq == "MONTHLY":
        month = "of the month" if interval == 1 else f"of every {interval} months"
        if byday and "BYMONTHDAY" not in parts:
            day = _day_of_month(byday, parts.get("BYSETPOS"))
            return f"every {day} {month}" if day else None
        if "BYSETPOS" not in parts and not byday:
            dates = [_nth(n) for n in _numbers(parts.get("BYMONTHDAY"), 1)]
            return f"on the {_and(dates)} {month}"
    return None


def describe(rule: str) -> str:
    """The rule in words, with its times of day."""
    parts = _parts(rule)
    exact = _exact(parts)
    if exact is not None:
        return f"{exact} {_times(parts)}"
    freq = FREQUENCIES.get(parts.get("FREQ", ""), "custom")
    return f"on its own {freq} schedule"
