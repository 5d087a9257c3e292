"""From a message body to a Reply: size limit, lookup, authorization, arguments, handler.

Whatever a sender types ends as a Reply; only a handler's own exceptions escape, so the
runtime can roll back the transaction and report an internal error. `run` also says which
command it was and how it ended, for the runtime's metrics.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from commands.binding import bind
from commands.context import Context
from commands.declaration import Command, Registry
from commands.errors import ArgumentError
from commands.help import group_help, suggestion, usage
from commands.replies import Reply, Severity
from commands.tokens import TokenError, tokenize
from workflow.errors import NotFound, Refused

_WORD = re.compile(r"\S+")
# Only a bounded prefix of an unknown command is echoed back or written to the audit trail.
_SHOWN_NAME = 64
# The name counted for input that names no declared command: what a sender typed never
# becomes a metric label.
UNKNOWN = "unknown"
# The name a bare group (`!dossier`) is counted under: it is answered with the group's help.
HELP = "help"


class Outcome(enum.StrEnum):
    OK = "ok"
    REFUSED = "refused"  # no role, the wrong role, the rules said no, or over the size limit
    USAGE_ERROR = "usage_error"  # an unknown command or wrong arguments
    INTERNAL_ERROR = "internal_error"  # the handler raised; decided by the runtime


@dataclass(frozen=True)
class Dispatched:
    reply: Reply
    command: str
    """The declared name, or UNKNOWN."""
    outcome: Outcome


class Dispatcher:
    def __init__(self, registry: Registry, prefix: str, max_bytes: int) -> None:
        self.registry = registry
        self.prefix = prefix
        self.max_bytes = max_bytes

    def is_command(self, body: str) -> bool:
        text = body.lstrip()
        return (
            text.startswith(self.prefix)
            and len(text) > len(self.prefix)
            and not text[len(self.prefix)].isspace()
        )

    async def dispatch(self, body: str, ctx: Context) -> Reply:
        """Every input ends as a Reply; only a handler's own failures escape."""
        return (await self.run(body, ctx)).reply

    def command_name(self, body: str) -> str:
        """The declared command `body` names, or UNKNOWN; what a failure is counted under."""
        if not self.is_command(body):
            return UNKNOWN
        words = _WORD.findall(storable(body).lstrip()[len(self.prefix) :])
        found = self.registry.resolve(words)
        return UNKNOWN if found is None else found[0].name

    async def run(self, body: str, ctx: Context) -> Dispatched:
        """`dispatch`, also saying which command it was and how it ended."""
        refused, usage = Outcome.REFUSED, Outcome.USAGE_ERROR
        size = len(body.encode("utf-8", errors="surrogatepass"))
        if size > self.max_bytes:
            why = f"refused: command text is {size} bytes; the limit is {self.max_bytes}"
            return Dispatched(_error(why), UNKNOWN, refused)
        if not self.is_command(body):
            why = f"Not a command; commands start with {self.prefix}"
            return Dispatched(_error(why), UNKNOWN, usage)
        body = storable(body)
        text = body.lstrip()[len(self.prefix) :]
        words = list(_WORD.finditer(text))
        found = self.registry.resolve([word.group() for word in words])
        if found is None:
            typed = words[0].group()[:_SHOWN_NAME]
            if not ctx.roles:
                no_role = await self._refuse(ctx, typed, "you have no role in Aegis; ask an admin")
                return Dispatched(no_role, UNKNOWN, refused)
            group = words[0].group().lower()
            if len(words) == 1 and group in self.registry.groups():
                # A bare group (`!dossier`): what it offers, not an error.
                shown = group_help(self.registry, group, ctx.roles, self.prefix)
                return Dispatched(shown, HELP, Outcome.OK)
            return Dispatched(self._unknown(words), UNKNOWN, usage)
        declared, count = found
        name = declared.name
        if not ctx.roles:
            no_role = await self._refuse(ctx, name, "you have no role in Aegis; ask an admin")
            return Dispatched(no_role, name, refused)
        if declared.role is not None and declared.role not in ctx.roles:
            why = f"you need role {declared.role} for {self.prefix}{name}"
            return Dispatched(await self._refuse(ctx, name, why), name, refused)
        arguments = text[words[count - 1].end() :]
        try:
            values = await bind(declared, arguments, tokenize(arguments), ctx)
        except (TokenError, ArgumentError) as wrong:
            return Dispatched(self._wrong_arguments(declared, str(wrong)), name, usage)
        if declared.wants_registry:
            values["registry"] = self.registry
        try:
            return Dispatched(await declared.handler(ctx, **values), name, Outcome.OK)
        except NotFound as missing:
            return Dispatched(await _not_found(missing, ctx), name, refused)
        except Refused as refusal:
            # The rules said no before writing anything: the sender learns why, nothing else.
            return Dispatched(_error(str(refusal), refusal.lines), name, refused)
        except ArgumentError as wrong:
            # A check across arguments that only the handler can make (a range, a pair).
            return Dispatched(self._wrong_arguments(declared, str(wrong)), name, usage)

    async def _refuse(self, ctx: Context, name: str, why: str) -> Reply:
        await ctx.workflow.refuse(ctx.actor, name, f"command:{name}", ctx.event_id, why)
        return _error(why)

    def _unknown(self, words: list[re.Match[str]]) -> Reply:
        typed = " ".join(word.group() for word in words[:2])[:_SHOWN_NAME]
        candidates = self.registry.spellings()
        hint = suggestion(typed, candidates, self.prefix) or suggestion(
            words[0].group()[:_SHOWN_NAME], candidates, self.prefix
        )
        lines = [f"Send {self.prefix}help for the list of commands."]
        if hint:
            lines.insert(0, hint)
        return _error(f"Unknown command {self.prefix}{typed}", tuple(lines))

    def _wrong_arguments(self, declared: Command, why: str) -> Reply:
        return Reply(
            why,
            Severity.ERROR,
            lines=(f"Send {self.prefix}help {declared.name} for details and examples.",),
            code=usage(declared, self.prefix),
        )


async def _not_found(missing: NotFound, ctx: Context) -> Reply:
    """Names the closest IDs that exist and that the sender may see; IDs only, so the reply
    carries nothing to withhold."""
    near = await ctx.workflow.closest_ids(missing.ref, ctx.roles)
    return _error(str(missing), (f"Did you mean {' or '.join(near)}?",) if near else ())


def _error(title: str, lines: tuple[str, ...] = ()) -> Reply:
    return Reply(title, Severity.ERROR, lines=lines)


def storable(text: str) -> str:
    """What a database can hold: JSON may smuggle in lone surrogates, and PostgreSQL refuses
    NUL characters in text, so neither reaches the workflow or the audit trail."""
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
