"""Splitting command text into words, the way people type on desktop and mobile clients.

Every token keeps its span in the source text so a free-text argument can be cut out of the
original message verbatim, with the sender's spacing and quotes intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Mobile keyboards replace straight quotes with typographic ones; each opener accepts the
# closers that keyboards in English, Dutch and French actually produce.
_CLOSERS = {
    '"': '"',
    "'": "'",
    "“": "”“",
    "„": "“”",
    "‘": "’‘",
    "«": "»",
}
# `level>=3` is the key `level>` with the value 3: comparisons read naturally in filters.
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]*[<>]?)=")


class TokenError(ValueError):
    """The text cannot be split into words (an unclosed quote)."""


@dataclass(frozen=True)
class Token:
    text: str
    """The word with its quotes removed; for `key=value` only the value."""
    start: int
    end: int
    key: str | None = None


def tokenize(source: str) -> list[Token]:
    """A quote opens only at the start of a word (or right after `key=`), so apostrophes
    inside words ("don't", "l’homme") stay literal instead of breaking the command."""
    tokens: list[Token] = []
    i = 0
    while i < len(source):
        if source[i].isspace():
            i += 1
            continue
        start = i
        key = None
        match = _KEY.match(source, i)
        if match:
            key = match.group(1)
            i = match.end()
        text, i = _read_word(source, i)
        tokens.append(Token(text, start, i, key))
    return tokens


def _read_word(source: str, i: int) -> tuple[str, int]:
    quoted = ""
    if i < len(source) and source[i] in _CLOSERS:
        opener = source[i]
        closers = _CLOSERS[opener]
        close = next((j for j in range(i + 1, len(source)) if source[j] in closers), -1)
        if close < 0:
            snippet = source[i : i + 30]
            raise TokenError(f"the quote {opener} in {snippet!r} is never closed")
        quoted = source[i + 1 : close]
        i = close + 1
    end = i
    while end < len(source) and not source[end].isspace():
        end += 1
    return quoted + source[i:end], end
