"""Help text generated from the declarations: usage lines, `!help`, and did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from commands.arguments import Kind
from commands.declaration import Command, Parameter, Registry
from commands.replies import Item, Reply, Section, Severity
from config import Role


def usage(declared: Command, prefix: str) -> str:
    """E.g. `!threat log <dossier> level=<1|2|3> <summary…> [review=<when>]`."""
    ordered = sorted(declared.parameters, key=lambda p: list(Kind).index(p.kind))
    return " ".join([prefix + declared.name, *(_shape(p) for p in ordered)])


def _shape(param: Parameter) -> str:
    if param.kind is Kind.OPTION:
        shape = f"{param.key}=<{param.type.name}>"
    elif param.kind is Kind.REST:
        shape = f"<{param.name}…>"
    else:
        shape = f"<{param.name}>"
    return f"[{shape}]" if param.optional else shape


def may_use(declared: Command, roles: frozenset[Role]) -> bool:
    return bool(roles) and (declared.role is None or declared.role in roles)


def suggestion(typed: str, candidates: Iterable[str], prefix: str) -> str | None:
    close = difflib.get_close_matches(typed.lower(), list(candidates), n=1, cutoff=0.6)
    return f"Did you mean {prefix}{close[0]}?" if close else None


def overview(registry: Registry, roles: frozenset[Role], prefix: str) -> Reply:
    """A heading per group, and under it the commands the sender may run, each with the
    values its arguments allow where the usage line does not already show them."""
    sections = []
    for group in registry.groups():
        usable = [c for c in registry if c.group == group and may_use(c, roles)]
        if usable:
            sections.append(Section(_heading(group), tuple(_entry(c, prefix) for c in usable)))
    return Reply(
        "Aegis commands",
        lines=(f"Send {prefix}help <command> for details and examples.",),
        sections=tuple(sections),
    )


def group_help(registry: Registry, group: str, roles: frozenset[Role], prefix: str) -> Reply:
    """The commands of one group that the sender may run: for `!help dossier` and `!dossier`."""
    usable = [c for c in registry if c.group == group and may_use(c, roles)]
    title = f"{_heading(group)} commands"
    if not usable:
        return Reply(title, lines=("None of them is open to your roles.",))
    return Reply(
        title,
        lines=(f"Send {prefix}help <command> for details and examples.",),
        sections=(Section("Commands you may use", tuple(_entry(c, prefix) for c in usable)),),
    )


def _heading(group: str) -> str:
    """`Dossier`, and `EW` for a group named by an abbreviation."""
    return group.upper() if len(group) <= 2 else group.capitalize()


def _entry(declared: Command, prefix: str) -> Item:
    shown = [p for p in declared.parameters if p.type.choices and not _in_usage(p)]
    return Item(
        declared.help,
        code=usage(declared, prefix),
        sub=tuple(f"{p.key}: {', '.join(v for v, _ in p.type.choices)}" for p in shown),
    )


def _in_usage(param: Parameter) -> bool:
    """Whether the usage line already lists every value (`<open|closed|all>`)."""
    return param.type.name == "|".join(value for value, _ in param.type.choices)


def topic_help(registry: Registry, topic: str, roles: frozenset[Role], prefix: str) -> Reply:
    """Details of one command, or the commands of one group; otherwise a suggestion."""
    words = topic.removeprefix(prefix).split()
    found = registry.resolve(words)
    if found is not None and found[1] == len(words):
        declared = found[0]
        if not may_use(declared, roles):
            why = f"{prefix}{declared.name} needs role {declared.role}, which you do not have"
            return Reply(why, Severity.ERROR, lines=(f"Send {prefix}help for your commands.",))
        return command_help(declared, prefix)
    group = topic.strip().lower()
    if group in registry.groups():
        return group_help(registry, group, roles, prefix)
    hint = suggestion(" ".join(words), [*registry.spellings(), *registry.groups()], prefix)
    return Reply(
        f"No help on {topic.strip()[:60]!r}",
        Severity.ERROR,
        lines=tuple(filter(None, [hint, f"Send {prefix}help for the list of commands."])),
    )


def command_help(declared: Command, prefix: str) -> Reply:
    fields = [("Role", str(declared.role) if declared.role else "any")]
    if declared.aliases:
        fields.append(("Aliases", ", ".join(prefix + alias for alias in declared.aliases)))
    examples = [f"Example: {_with_prefix(example, prefix)}" for example in declared.examples]
    allowed = tuple(
        Item(
            param.key,
            sub=tuple(f"{value} — {meaning}" if meaning else value for value, meaning in choices),
        )
        for param in declared.parameters
        if (choices := param.type.choices)
    )
    return Reply(
        prefix + declared.name,
        lines=(declared.help, *examples),
        fields=tuple(fields),
        code=usage(declared, prefix),
        sections=(Section("Allowed values", allowed),) if allowed else (),
    )


def _with_prefix(example: str, prefix: str) -> str:
    """Examples are written with `!`; show them with the configured prefix."""
    return prefix + example.removeprefix("!")
