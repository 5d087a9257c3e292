"""Search words: how a dossier's texts and a query become comparable terms.

Both sides go through `fold`, so case and accents never decide a match ("israel" finds
"Israël", "ISRAËL" finds "israel"). The index keeps whole tokens, so a reference such as
`BZ/2026/117` is found by `BZ/2026`, and also their parts, so `117` finds it too. A query
word matches every indexed term it is a prefix of; the words of a query must all match.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from workflow.model import Dossier
from workflow.refs import normal_ref

MAX_TERM = 64
"""Terms are cut to this length; a query word is cut the same way, so prefixes still hold."""
MIN_WORD = 2
"""Shorter words are left out of the index and of queries: they would match nearly all."""

_TOKEN = re.compile(r"\w+(?:[-/.]\w+)*")
_PART = re.compile(r"\w+")


class Field(enum.StrEnum):
    """Where in a dossier a term was found, to tell the sender what matched."""

    ID = "ID"
    TITLE = "title"
    SUBJECT = "subject"
    CATEGORY = "category"
    REFERENCE = "reference"
    NOTE = "note"


@dataclass(frozen=True)
class Hit:
    """A dossier found, with the fields the query matched in (in Field order)."""

    dossier: Dossier
    matched: tuple[Field, ...]


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    total: int
    """How many dossiers match in all; `hits` holds the most recently active of them."""


def fold(text: str) -> str:
    """Lower case without accents: casefold, then NFKD with its combining marks removed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(text: str) -> set[str]:
    """What the index keeps of a text: each token whole and, if it has `-`, `/` or `.`
    inside, each of its parts; none shorter than MIN_WORD."""
    found: set[str] = set()
    for token in _TOKEN.findall(fold(text)):
        found.add(token)
        found.update(_PART.findall(token))
    return {term[:MAX_TERM] for term in found if len(term) >= MIN_WORD}


def query_words(text: str) -> list[str]:
    """The words a query must all match, each by prefix, in the order typed. A dossier ID
    in any spelling (`d-2026-1`) is looked up as the ID it means (`D-2026-0001`)."""
    words: list[str] = []
    for token in text.split():
        ref = normal_ref(token.strip(".,;:!?\"'()[]"))
        if ref is not None:
            words.append(fold(ref))
            continue
        words += [t[:MAX_TERM] for t in _TOKEN.findall(fold(token)) if len(t) >= MIN_WORD]
    return list(dict.fromkeys(words))


def matches(words: Iterable[str], text: str) -> bool:
    """Whether some word of the query starts a term of `text`."""
    indexed = terms(text)
    return any(term.startswith(word) for word in words for term in indexed)


def dossier_terms(
    ref: str,
    title: str,
    category: str,
    external_ref: str | None,
    subjects: Iterable[str],
    notes: Iterable[str],
) -> set[tuple[Field, str]]:
    """Every (field, term) of one dossier, from the fields `!dossier find` searches."""
    sources: list[tuple[Field, str]] = [
        (Field.ID, ref),
        (Field.TITLE, title),
        (Field.CATEGORY, category),
        (Field.REFERENCE, external_ref or ""),
        *((Field.SUBJECT, name) for name in subjects),
        *((Field.NOTE, note) for note in notes),
    ]
    return {(field, term) for field, text in sources for term in terms(text)}


def after_prefix(word: str) -> str:
    """The least string greater than every string that starts with `word`: the end of the
    index range `word <= term < after_prefix(word)`, in code point (and UTF-8 byte) order."""
    last = ord(word[-1]) + 1
    if last > 0x10FFFF:
        return after_prefix(word[:-1]) if len(word) > 1 else chr(0x10FFFF)
    if 0xD800 <= last <= 0xDFFF:  # surrogates are no characters; skip past them
        last = 0xE000
    return word[:-1] + chr(last)
