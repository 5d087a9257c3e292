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
_CUTOFF = 0.6

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
    ties by the nearest number. Only IDs that exist, never an example."""
    matcher = difflib.SequenceMatcher(b=ref)
    scored: list[tuple[float, int, str]] = []
    for candidate in existing:
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() < _CUTOFF or matcher.quick_ratio() < _CUTOFF:
            continue
        ratio = matcher.ratio()
        if ratio >= _CUTOFF:
            scored.append((-ratio, abs(_number(candidate) - _number(ref)), candidate))
    return [candidate for *_, candidate in sorted(scored)[:SUGGESTED]]


def _number(ref: str) -> int:
    digits = ref.rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0
