"""Help text generated from the declarations: usage lines, `!help`, and did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from commands.arguments import Kind
from commands.declaration import Command, Parameter, Registry
from commands.replies import Reply, Severity
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
    """One line per command the sender may use, grouped."""
    lines: list[str] = []
    for group in registry.groups():
        usable = [c for c in registry if c.group == group and may_use(c, roles)]
        if usable:
            lines.append(f"{group.capitalize()}:")
            lines.extend(f"{usage(c, prefix)} — {c.help}" for c in usable)
    lines.append(f"Send {prefix}help <command> for details and examples.")
    return Reply("Aegis commands", lines=tuple(lines))


def topic_help(registry: Registry, topic: str, roles: frozenset[Role], prefix: str) -> Reply:
    """Details of one command, or the commands of one group; otherwise a suggestion."""
    words = topic.removeprefix(prefix).split()
    found = registry.resolve(words)
    if found is not None and found[1] == len(words):
        return command_help(found[0], prefix)
    group = topic.strip().lower()
    members = [c for c in registry if c.group == group]
    if members:
        lines = [f"{usage(c, prefix)} — {c.help}" for c in members if may_use(c, roles)]
        hidden = len(members) - len(lines)
        if hidden:
            lines.append(f"({hidden} more need a role you do not have)")
        return Reply(f"{group.capitalize()} commands", lines=tuple(lines))
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
    return Reply(
        prefix + declared.name,
        lines=(declared.help, *examples),
        fields=tuple(fields),
        code=usage(declared, prefix),
    )


def _with_prefix(example: str, prefix: str) -> str:
    """Examples are written with `!`; show them with the configured prefix."""
    return prefix + example.removeprefix("!")
