"""Declaring a command once: name, aliases, role, help and typed parameters.

Usage lines, `!help` and error messages are all derived from this declaration, so they
cannot drift from what the handler actually accepts. Mistakes in a declaration raise at
import time, never while a sender is waiting for an answer.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from commands.arguments import ArgType, Kind, Spelled, arg_type
from commands.replies import Reply
from config import Role

Handler = Callable[..., Awaitable[Reply]]

_NAME = re.compile(r"[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)*")
_REQUIRED = inspect.Parameter.empty
GENERAL = "general"


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Kind
    type: ArgType[Any]
    default: object = _REQUIRED
    spelled: str | None = None

    @property
    def key(self) -> str:
        """What the sender types before `=`."""
        return self.spelled or self.name

    @property
    def label(self) -> str:
        """How a message names it: as the sender types it, so an option spelled `level>`
        (typed `level>=3`) is `level>=`, not a key nobody writes."""
        if self.spelled and not self.spelled[-1].isalnum():
            return f"{self.spelled}="
        return self.key

    @property
    def has_default(self) -> bool:
        return self.default is not _REQUIRED

    @property
    def optional(self) -> bool:
        return self.has_default or self.type.omitted is not None


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    role: Role | None
    aliases: tuple[str, ...]
    examples: tuple[str, ...]
    group: str
    handler: Handler
    parameters: tuple[Parameter, ...]
    wants_registry: bool
    """Whether the handler takes the dispatching registry (as `!help` does)."""

    @property
    def options(self) -> dict[str, Parameter]:
        return {p.key.lower(): p for p in self.parameters if p.kind is Kind.OPTION}


def command(
    name: str,
    *,
    help: str,
    role: Role | None = None,
    examples: Sequence[str] = (),
    aliases: Sequence[str] = (),
    group: str | None = None,
) -> Callable[[Handler], Command]:
    """Declare a handler `async def f(ctx: Context, <typed parameters>) -> Reply`.

    `role=None` lets anyone with some role use it. The group (for `!help`) is the first word
    of a multi-word name unless given."""
    for spelling in (name, *aliases):
        if not _NAME.fullmatch(spelling):
            raise ValueError(f"command name {spelling!r}: lowercase words separated by one space")

    def declare(handler: Handler) -> Command:
        parameters, wants_registry = _parameters(handler)
        return Command(
            name=name,
            help=help,
            role=role,
            aliases=tuple(aliases),
            examples=tuple(examples),
            group=group or (name.split()[0] if " " in name else GENERAL),
            handler=handler,
            parameters=parameters,
            wants_registry=wants_registry,
        )

    return declare


def _parameters(handler: Handler) -> tuple[tuple[Parameter, ...], bool]:
    where = getattr(handler, "__qualname__", repr(handler))
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{where}: a command handler must be async")
    try:
        hints = get_type_hints(handler, include_extras=True)
    except NameError as missing:
        raise TypeError(f"{where}: cannot resolve its annotations ({missing})") from None
    signature = list(inspect.signature(handler).parameters.values())
    if not signature:
        raise TypeError(f"{where}: the first parameter must be the Context")
    parameters: list[Parameter] = []
    wants_registry = False
    for param in signature[1:]:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{where}: parameter {param.name} must be a plain named parameter")
        if param.name not in hints:
            raise TypeError(f"{where}: parameter {param.name} needs a type annotation")
        hint = hints[param.name]
        if hint is Registry:
            wants_registry = True
            continue
        kind, value_type, spelled = _kind_of(hint)
        try:
            parsed = arg_type(value_type)
        except TypeError as unknown:
            raise TypeError(f"{where}: parameter {param.name}: {unknown}") from None
        parameters.append(Parameter(param.name, kind, parsed, param.default, spelled))
    if sum(p.kind is Kind.REST for p in parameters) > 1:
        raise TypeError(f"{where}: only one parameter can take the rest of the text")
    return tuple(parameters), wants_registry


def _kind_of(hint: object) -> tuple[Kind, object, str | None]:
    kind, spelled = Kind.POSITIONAL, None
    if get_origin(hint) is Annotated:
        metadata = hint.__metadata__  # type: ignore[attr-defined]
        kind = next((m for m in metadata if isinstance(m, Kind)), kind)
        spelled = next((m.key for m in metadata if isinstance(m, Spelled)), None)
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, types.UnionType):
        # `X | None` only says the default may be None; the sender still types an X.
        members = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            hint = members[0]
    return kind, hint, spelled


class Registry:
    """The commands one dispatcher answers to, looked up by name or alias."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: list[Command] = []
        self._index: dict[str, Command] = {}
        for each in commands:
            self.add(each)

    @classmethod
    def from_modules(cls, *modules: types.ModuleType) -> Registry:
        """Every command a module declares, in the order it declares them."""
        return cls(
            value
            for module in modules
            for value in vars(module).values()
            if isinstance(value, Command)
        )

    def add(self, declared: Command) -> None:
        for spelling in (declared.name, *declared.aliases):
            if spelling in self._index:
                raise ValueError(f"command name {spelling!r} is declared twice")
        self._commands.append(declared)
        for spelling in (declared.name, *declared.aliases):
            self._index[spelling] = declared

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands)

    def spellings(self) -> list[str]:
        return list(self._index)

    def groups(self) -> list[str]:
        return list(dict.fromkeys(each.group for each in self._commands))

    def resolve(self, words: Sequence[str]) -> tuple[Command, int] | None:
        """The command named by the longest run of leading words, and how many it took."""
        for count in range(min(len(words), self._longest()), 0, -1):
            found = self._index.get(" ".join(words[:count]).lower())
            if found is not None:
                return found, count
        return None

    def _longest(self) -> int:
        return max((len(spelling.split()) for spelling in self._index), default=0)
