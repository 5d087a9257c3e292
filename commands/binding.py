"""Matching the sender's words to a command's declared parameters.

Declared options are pulled out wherever they appear, so a sender may add `level=3` after
starting the free text; positionals fill in order; what remains is the free text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from commands.arguments import Kind
from commands.declaration import Command, Parameter
from commands.errors import ArgumentError, shown
from commands.tokens import Token

if TYPE_CHECKING:
    from commands.context import Context


async def bind(
    declared: Command, source: str, tokens: list[Token], ctx: Context
) -> dict[str, object]:
    """Keyword arguments for the handler, or `ArgumentError` saying what is wrong."""
    options = declared.options
    positionals = [p for p in declared.parameters if p.kind is Kind.POSITIONAL]
    rest = next((p for p in declared.parameters if p.kind is Kind.REST), None)
    values: dict[str, object] = {}
    given: dict[str, Token] = {}
    runs: list[list[Token]] = []
    next_slot = 0
    extracted_since_last = True
    for token in tokens:
        key = token.key.lower() if token.key is not None else None
        if key is not None and key in options:
            if key in given:
                raise ArgumentError(f"{key}= is given twice")
            given[key] = token
            extracted_since_last = True
            continue
        if key is not None and rest is None:
            raise ArgumentError(_unknown_option(key, declared))
        if not runs:
            # An undeclared `x=y` is just a word here, key included.
            word = token.text if key is None else f"{token.key}={token.text}"
            while next_slot < len(positionals):
                slot = positionals[next_slot]
                next_slot += 1
                if slot.optional and not slot.type.accepts(word):
                    try:
                        values[slot.name] = await _omitted(slot, ctx)
                    except ArgumentError:
                        if rest is not None or any(
                            later.type.accepts(word) for later in positionals[next_slot:]
                        ):
                            raise
                        # Nothing else could take these words: they were meant as this
                        # argument, and its type says best what is wrong with them.
                        await _parse(slot, source[token.start :].strip(), ctx)
                        raise
                    continue
                values[slot.name] = await _parse(slot, word, ctx)
                break
            else:
                if rest is None:
                    raw = source[token.start : token.end]
                    raise ArgumentError(f"unexpected {shown(raw)}: nothing more is expected there")
                runs.append([token])
                extracted_since_last = False
            continue
        if extracted_since_last:
            runs.append([token])
            extracted_since_last = False
        else:
            runs[-1].append(token)
    for slot in positionals[next_slot:]:
        values[slot.name] = await _omitted(slot, ctx)
    for key, option in options.items():
        token_or_none = given.get(key)
        if token_or_none is None:
            values[option.name] = await _omitted(option, ctx)
        else:
            values[option.name] = await _parse(option, token_or_none.text, ctx)
    if rest is not None:
        if runs:
            text = " ".join(source[run[0].start : run[-1].end] for run in runs)
            values[rest.name] = await _parse(rest, text, ctx)
        else:
            values[rest.name] = await _omitted(rest, ctx)
    return values


async def _parse(param: Parameter, text: str, ctx: Context) -> object:
    try:
        return await param.type.parse(text, ctx)
    except ArgumentError as wrong:
        raise ArgumentError(f"{param.label}: {wrong}") from None


async def _omitted(param: Parameter, ctx: Context) -> object:
    if param.has_default:
        return param.default
    if param.type.omitted is not None:
        try:
            return await param.type.fallback(ctx)
        except ArgumentError as wrong:
            raise ArgumentError(f"{param.label}: {wrong}") from None
    shape = f"{param.name}=<{param.type.name}>" if param.kind is Kind.OPTION else f"<{param.name}>"
    raise ArgumentError(f"missing {shape}")


def _unknown_option(key: str, declared: Command) -> str:
    if not declared.options:
        return f"{shown(key + '=')} is not an option here; this command takes none"
    valid = ", ".join(f"{name}=" for name in declared.options)
    return f"{shown(key + '=')} is not an option here; valid options: {valid}"
