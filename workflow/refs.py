"""The one spelling of a dossier ID. People type `d-2026-1` or `D-2026-01`; the dossier is
`D-2026-0001`. Commands read IDs with it, and search looks IDs up with it."""

from __future__ import annotations

import re

DOSSIER_ID = re.compile(r"D-(\d{4})-(\d{1,9})", re.IGNORECASE)
SHAPE = "D-<year>-<number>"


def normal_ref(text: str) -> str | None:
    """`D-2026-0001` for any spelling of it; None if the text is no dossier ID at all."""
    match = DOSSIER_ID.fullmatch(text.strip())
    if match is None:
        return None
    return f"D-{match.group(1)}-{int(match.group(2)):04d}"
