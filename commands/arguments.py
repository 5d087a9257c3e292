"""Argument types: how each annotation in a command signature is read from the sender's text.

The kinds (positional, `key=value` option, trailing free text) come from `Opt`/`Rest`
markers inside `Annotated`, so mypy sees the plain value type a handler receives. Types are
global on purpose: a dossier reference means the same thing in every command, so the module
that owns dossiers registers it once with `register_type`.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, NewType, TypeAlias, TypeVar

from commands.dates import parse_end, parse_start
from commands.errors import ArgumentError, shown
from config.settings import USER_ID_RE

if TYPE_CHECKING:
    from commands.context import Context

T = TypeVar("T")


class Kind(enum.Enum):
    POSITIONAL = "positional"
    OPTION = "option"
    REST = "rest"


Opt: TypeAlias = Annotated[T, Kind.OPTION]
"""`key=value`, anywhere after the command name; required unless the parameter has a default."""
Rest: TypeAlias = Annotated[T, Kind.REST]
"""The remaining free text, exactly as typed; required unless the parameter has a default."""


@dataclass(frozen=True)
class Spelled:
    """An option the sender types differently from its parameter name, such as `level>=3`:
    `level_min: Annotated[int | None, Kind.OPTION, Spelled("level>")] = None`."""

    key: str


UserId = NewType("UserId", str)
"""A Matrix user ID, `@local:server`."""


class Mine(str):
    """The word `mine` in a listing: only what the sender takes part in."""


Page = NewType("Page", int)
"""A page of a listing, from 1 to MAX_PAGE: a larger number would only reach the database as
an offset beyond any row, or beyond what its integers hold."""
MAX_PAGE = 10_000

Start = NewType("Start", datetime)
"""A moment where something begins: a date typed without a time is the start of that day.
A plain `datetime` parameter reads the same way."""
End = NewType("End", datetime)
"""A moment where something ends or falls due: a date typed without a time is the end of
that day, so "end=31 december" covers all of the 31st."""

Parser: TypeAlias = Callable[[str, "Context"], Awaitable[T] | T]
Fallback: TypeAlias = Callable[["Context"], Awaitable[T] | T]
Choice: TypeAlias = tuple[str, str]
"""An allowed value as the sender types it, and what it means ("" if it says itself)."""


@dataclass(frozen=True)
class ArgType(Generic[T]):
    name: str
    """How usage lines show a value of this type: `<name>`, `key=<name>`."""
    parser: Parser[T]
    omitted: Fallback[T] | None = None
    """The value when the sender leaves the argument out (e.g. the room's own dossier)."""
    looks_like: Callable[[str], bool] | None = None
    """For an optional positional: whether a word is meant as this argument at all, so
    a word that is not falls through to the next argument instead of being an error."""
    choices: tuple[Choice, ...] = ()
    """Every value the parser accepts, when they can be listed: what `!help` shows."""

    async def parse(self, text: str, ctx: Context) -> T:
        return await _resolved(self.parser(text, ctx))

    async def fallback(self, ctx: Context) -> T:
        assert self.omitted is not None
        return await _resolved(self.omitted(ctx))

    def accepts(self, text: str) -> bool:
        return self.looks_like is None or self.looks_like(text)


async def _resolved(value: Awaitable[T] | T) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


_TYPES: dict[object, ArgType[Any]] = {}


def register_type(
    tp: object,
    parser: Parser[T],
    *,
    name: str,
    omitted: Fallback[T] | None = None,
    looks_like: Callable[[str], bool] | None = None,
    choices: Iterable[str | Choice] = (),
) -> None:
    """Teach the framework a new argument type. The parser raises `ArgumentError` for bad
    input; with `omitted`, a positional of this type may be left out. `choices` lists the
    values it accepts, from the same data the parser checks against, for `!help`."""
    listed = tuple((c, "") if isinstance(c, str) else c for c in choices)
    _TYPES[tp] = ArgType(name, parser, omitted, looks_like, listed)


def arg_type(tp: object) -> ArgType[Any]:
    known = _TYPES.get(tp)
    if known is not None:
        return known
    if isinstance(tp, type) and issubclass(tp, enum.StrEnum):
        return _enum_type(tp)
    raise TypeError(f"no argument parser for {tp!r}; declare it with register_type")


def _enum_type(tp: type[enum.StrEnum]) -> ArgType[Any]:
    """Every member is a choice, with its `description` if the enum gives one."""
    values = [member.value for member in tp]
    choices = tuple((member.value, str(getattr(member, "description", ""))) for member in tp)
    label = "|".join(values) if len(values) <= 6 else tp.__name__.lower()

    def parse(text: str, ctx: Context) -> enum.StrEnum:
        wanted = text.strip().lower()
        for member in tp:
            if wanted in (member.value.lower(), member.name.lower()):
                return member
        raise ArgumentError(f"{shown(text)} is not one of: {', '.join(values)}")

    return ArgType(label, parse, choices=choices)


def _parse_str(text: str, ctx: Context) -> str:
    return text


_INT = re.compile(r"[+-]?[0-9]{1,18}")


def _parse_int(text: str, ctx: Context) -> int:
    if not _INT.fullmatch(text.strip()):
        raise ArgumentError(f"{shown(text)} is not a whole number")
    return int(text)


def _parse_page(text: str, ctx: Context) -> Page:
    page = _parse_int(text, ctx)
    if not 1 <= page <= MAX_PAGE:
        raise ArgumentError(f"{shown(text)} is not a page from 1 to {MAX_PAGE}")
    return Page(page)


_TRUE = frozenset({"yes", "true", "on", "1", "y", "ja", "oui"})
_FALSE = frozenset({"no", "false", "off", "0", "n", "nee", "non"})


def _parse_bool(text: str, ctx: Context) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ArgumentError(f"{shown(text)} is not yes or no")


def parse_user_id(text: str, ctx: Context) -> UserId:
    if not USER_ID_RE.fullmatch(text):
        raise ArgumentError(f"{shown(text)} is not a Matrix user ID like @name:server")
    return UserId(text)


register_type(str, _parse_str, name="text")
register_type(int, _parse_int, name="number")
register_type(Page, _parse_page, name="page")
register_type(bool, _parse_bool, name="yes|no", choices=("yes", "no"))
register_type(datetime, parse_start, name="when")
register_type(Start, lambda text, ctx: Start(parse_start(text, ctx)), name="when")
register_type(End, lambda text, ctx: End(parse_end(text, ctx)), name="when")
register_type(
    Mine,
    lambda text, ctx: Mine("mine"),
    name="mine",
    looks_like=lambda text: text.lower() == "mine",
)
register_type(UserId, parse_user_id, name="@user:server", looks_like=lambda text: text[:1] == "@")
