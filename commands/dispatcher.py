"""From a message body to a Reply: size limit, lookup, authorization, arguments, handler.

Whatever a sender types ends as a Reply; only a handler's own exceptions escape, so the
runtime can roll back the transaction and report an internal error.
"""

from __future__ import annotations

import re

from commands.binding import bind
from commands.context import Context
from commands.declaration import Command, Registry
from commands.errors import ArgumentError
from commands.help import suggestion, usage
from commands.replies import Reply, Severity
from commands.tokens import TokenError, tokenize
from workflow.errors import Refused

_WORD = re.compile(r"\S+")
# Only a bounded prefix of an unknown command is echoed back or written to the audit trail.
_SHOWN_NAME = 64


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
        size = len(body.encode("utf-8", errors="surrogatepass"))
        if size > self.max_bytes:
            return _error(f"refused: command text is {size} bytes; the limit is {self.max_bytes}")
        if not self.is_command(body):
            return _error(f"Not a command; commands start with {self.prefix}")
        body = storable(body)
        text = body.lstrip()[len(self.prefix) :]
        words = list(_WORD.finditer(text))
        found = self.registry.resolve([word.group() for word in words])
        if found is None:
            typed = words[0].group()[:_SHOWN_NAME]
            if not ctx.roles:
                return await self._refuse(ctx, typed, "you have no role in Aegis; ask an admin")
            return self._unknown(words)
        declared, count = found
        if not ctx.roles:
            return await self._refuse(ctx, declared.name, "you have no role in Aegis; ask an admin")
        if declared.role is not None and declared.role not in ctx.roles:
            return await self._refuse(
                ctx,
                declared.name,
                f"you need role {declared.role} for {self.prefix}{declared.name}",
            )
        arguments = text[words[count - 1].end() :]
        try:
            values = await bind(declared, arguments, tokenize(arguments), ctx)
        except (TokenError, ArgumentError) as wrong:
            return self._wrong_arguments(declared, str(wrong))
        if declared.wants_registry:
            values["registry"] = self.registry
        try:
            return await declared.handler(ctx, **values)
        except Refused as refusal:
            # The rules said no before writing anything: the sender learns why, nothing else.
            return _error(str(refusal))
        except ArgumentError as wrong:
            # A check across arguments that only the handler can make (a range, a pair).
            return self._wrong_arguments(declared, str(wrong))

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


def _error(title: str, lines: tuple[str, ...] = ()) -> Reply:
    return Reply(title, Severity.ERROR, lines=lines)


def storable(text: str) -> str:
    """What a database can hold: JSON may smuggle in lone surrogates, and PostgreSQL refuses
    NUL characters in text, so neither reaches the workflow or the audit trail."""
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
