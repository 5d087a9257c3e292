"""IDs as people type them and as they are: one spelling per ID, and the closest existing IDs
when one names nothing. People type `d-2026-1` or `D-2026-01`; the dossier is `D-2026-0001`.
Commands read IDs with it, and search looks IDs up with it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from workflow.access import Data

DOSSIER_ID = re.compile(r"D-(\d{4})-(\d{1,9})", re.IGNORECASE)
DOSSIER_SHAPE = "D-<year>-<number>"
SUGGESTED = 3

# What reading each kind of ID takes: an ID is suggested only to who may read what it names.
READ_TO_SEE: dict[str, Data] = {
    "D": Data.DOSSIER,
    "P": Data.DOSSIER,
    "M": Data.EXECUTION,
    "EW": Data.EARLY_WARNING,
    "W": Data.EARLY_WARNING,
}


def normal_ref(text: str) -> str | None:
    """`D-2026-0001` for any spelling of it; None if the text is no dossier ID at all."""
    match = DOSSIER_ID.fullmatch(text.strip())
    if match is None:
        return None
    return f"D-{match.group(1)}-{int(match.group(2)):04d}"


def kind_of(ref: str) -> str:
    """`D`, `M`, `P`, `EW` or `W`: what comes before the first dash."""
    return ref.partition("-")[0].upper()


def closest(ref: str, existing: Iterable[str]) -> list[str]:
    """The existing IDs most like `ref`, best first: by difflib's likeness of the spelling,
    ties by the nearest number. Only IDs that exist, never an example.

    Difflib weighs only the IDs one or two typed characters away (a wrong digit, two digits
    swapped), so ten thousand dossiers cost a pass of string compares, not of difflib; if
    there are none, the numerically nearest of the same kind (and year) are the closest."""
    candidates = [c for c in existing if c != ref and kind_of(c) == kind_of(ref)]
    near = [c for c in candidates if _typos(ref, c) <= 2]
    if not near:
        series = ref.rpartition("-")[0]
        same = [c for c in candidates if c.rpartition("-")[0] == series]
        return sorted(same, key=lambda c: abs(_number(c) - _number(ref)))[:SUGGESTED]
    matcher = difflib.SequenceMatcher(b=ref)
    scored: list[tuple[float, int, str]] = []
    for candidate in near:
        matcher.set_seq1(candidate)
        scored.append((-matcher.ratio(), abs(_number(candidate) - _number(ref)), candidate))
    return [candidate for *_, candidate in sorted(scored)[:SUGGESTED]]


def _typos(typed: str, candidate: str) -> int:
    """How many characters differ, place by place; IDs of another length are far."""
    if len(typed) != len(candidate):
        return len(typed) + len(candidate)
    return sum(a != b for a, b in zip(typed, candidate, strict=True))


def _number(ref: str) -> int:
    digits = ref.rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0
