"""Mistakes in a declaration fail at import time, with a message naming the handler."""

from __future__ import annotations

from typing import Any

import pytest

from commands import Context, Registry, Reply, Rest, command
from commands.arguments import Kind
from tests.commands_fakes import threat_log


async def _plain(ctx: Context) -> Reply:
    return Reply("ok")


async def _unannotated(ctx: Context, thing) -> Reply:  # type: ignore[no-untyped-def]
    return Reply("ok")


async def _unknown_type(ctx: Context, thing: complex) -> Reply:
    return Reply("ok")


async def _two_rests(ctx: Context, one: Rest[str], two: Rest[str]) -> Reply:
    return Reply("ok")


async def _star(ctx: Context, *things: str) -> Reply:
    return Reply("ok")


def _not_async(ctx: Context) -> Reply:
    return Reply("ok")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (_unannotated, "parameter thing needs a type annotation"),
        (_unknown_type, "no argument parser for <class 'complex'>"),
        (_two_rests, "only one parameter can take the rest"),
        (_star, "must be a plain named parameter"),
        (_not_async, "must be async"),
    ],
)
def test_bad_handlers(handler: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        command("x", help="x")(handler)


@pytest.mark.parametrize("name", ["Threat", "threat  log", "", "a_b", "!ping"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="lowercase words"):
        command(name, help="x")


def test_duplicate_spelling_in_a_registry() -> None:
    first = command("ping", help="x")(_plain)
    second = command("pong", help="x", aliases=("ping",))(_plain)
    with pytest.raises(ValueError, match="'ping' is declared twice"):
        Registry([first, second])


def test_declaration_reads_kinds_from_annotations() -> None:
    shapes = [(p.name, p.kind, p.optional, p.type.name) for p in threat_log.parameters]
    assert shapes == [
        ("dossier", Kind.POSITIONAL, True, "dossier"),
        ("level", Kind.OPTION, False, "1|2|3"),
        ("source", Kind.OPTION, False, "OCAD|police|open"),
        ("summary", Kind.REST, False, "text"),
        ("review", Kind.OPTION, True, "when"),
    ]
    assert threat_log.group == "threat"
    assert threat_log.aliases == ("tl",)
