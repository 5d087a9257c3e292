"""Tokenizing and binding: each argument kind, quotes, free text, options anywhere, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commands import Dispatcher, Severity
from commands.tokens import TokenError, tokenize
from config import Role
from tests.commands_fakes import Source, ThreatLevel, calls, make_context, test_registry


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


async def run(body: str, *roles: Role, room_id: str = "!ops:example.org"):
    ctx, _ = make_context(*(roles or (Role.ANALYST, Role.ADMIN)), room_id=room_id)
    return await Dispatcher(test_registry, "!", 4096).dispatch(body, ctx)


def texts(source: str) -> list[tuple[str, str | None]]:
    return [(token.text, token.key) for token in tokenize(source)]


def test_tokenize_words_and_quotes() -> None:
    assert texts("a \"b c\" 'd e' “f g” „h i“ ‘j k’ «l m»") == [
        ("a", None),
        ("b c", None),
        ("d e", None),
        ("f g", None),
        ("h i", None),
        ("j k", None),
        ("l m", None),
    ]


def test_tokenize_key_values_and_spans() -> None:
    source = 'x  level=3 note="two words" don\'t'
    tokens = tokenize(source)
    assert [(t.text, t.key) for t in tokens] == [
        ("x", None),
        ("3", "level"),
        ("two words", "note"),
        ("don't", None),
    ]
    assert source[tokens[2].start : tokens[2].end] == 'note="two words"'


def test_tokenize_apostrophes_inside_words_are_text() -> None:
    assert texts("l’homme suspects' car") == [("l’homme", None), ("suspects'", None), ("car", None)]


@pytest.mark.parametrize("source", ['"open', "a 'b c", "“curly", 'key="never'])
def test_tokenize_unclosed_quote(source: str) -> None:
    with pytest.raises(TokenError, match="never closed"):
        tokenize(source)


async def test_all_kinds_bind() -> None:
    reply = await run("!threat log D-2026-0007 level=3 source=OCAD online  threats, 'quoted'")
    assert reply.title == "logged"
    assert calls == [
        {
            "dossier": "D-2026-0007",
            "level": ThreatLevel.HIGH,
            "source": Source.OCAD,
            "summary": "online  threats, 'quoted'",
            "review": None,
        }
    ]


async def test_options_anywhere_and_extracted_from_rest() -> None:
    await run("!threat log level=2 D-2026-0007 first part source=police second   part")
    assert calls[0]["level"] is ThreatLevel.MEDIUM
    assert calls[0]["source"] is Source.POLICE
    assert calls[0]["dossier"] == "D-2026-0007"
    assert calls[0]["summary"] == "first part second   part"


async def test_undeclared_key_value_in_rest_stays_text() -> None:
    await run("!threat log level=1 source=open see x=y and https://a.example/?q=1")
    assert calls[0]["summary"] == "see x=y and https://a.example/?q=1"


async def test_quoted_option_value_and_alias() -> None:
    await run('!tl level=1 source=open note review="2026-12-03 10:00"')
    assert calls[0]["review"] == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert calls[0]["summary"] == "note"


async def test_optional_positional_defaults_from_context() -> None:
    await run("!threat log level=1 source=open Dutch summary")
    assert calls[0]["dossier"] == "D-2026-0001"
    assert calls[0]["summary"] == "Dutch summary"


async def test_context_default_error_is_reported() -> None:
    reply = await run("!threat list", room_id="!elsewhere:example.org")
    assert reply.severity is Severity.ERROR
    assert reply.title == "dossier: this room has no dossier; name one like D-2026-0007"
    assert reply.code == "!threat list [<dossier>]"


async def test_positional_types_and_defaults() -> None:
    await run("!count 12")
    await run("!count -3 boxes")
    assert calls == [{"amount": 12, "unit": "items"}, {"amount": -3, "unit": "boxes"}]


@pytest.mark.parametrize(
    ("word", "value"), [("yes", True), ("OFF", False), ("1", True), ("false", False), ("on", True)]
)
async def test_bool_option(word: str, value: bool) -> None:
    await run(f"!grant @bob:example.org liaison notify={word}")
    assert calls == [{"user": "@bob:example.org", "role": Role.LIAISON, "notify": value}]


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("!count many", "amount: 'many' is not a whole number"),
        ("!count", "missing <amount>"),
        ("!count 1 2 3", "unexpected '3': nothing more is expected there"),
        ("!count 1 x=2", "'x=' is not an option here; this command takes none"),
        ("!grant bob liaison", "user: 'bob' is not a Matrix user ID like @name:server"),
        (
            "!grant @bob:example.org chief",
            "role: 'chief' is not one of: liaison, analyst, approver, police, admin, "
            "warning_approver",
        ),
        ("!grant @bob:example.org admin notify=maybe", "notify: 'maybe' is not yes or no"),
        (
            "!grant @bob:example.org admin loud=yes",
            "'loud=' is not an option here; valid options: notify=",
        ),
        ("!threat log level=4 source=open x", "level: '4' is not one of: 1, 2, 3"),
        ("!threat log level=1 summary", "missing source=<OCAD|police|open>"),
        ("!threat log level=1 source=open", "missing <summary>"),
        ("!threat log level=1 level=2 source=open x", "level= is given twice"),
        ('!threat log level=1 source=open "unclosed', None),
        ("!remind at=someday call", None),
    ],
)
async def test_errors_say_what_is_wrong_and_show_usage(body: str, title: str | None) -> None:
    reply = await run(body)
    assert reply.severity is Severity.ERROR
    if title is not None:
        assert reply.title == title
    assert reply.code is not None
    assert reply.code.startswith("!" + body[1:].split()[0])
    assert calls == []


async def test_unclosed_quote_message() -> None:
    reply = await run('!threat log level=1 source=open "unclosed text')
    assert reply.title == "the quote \" in '\"unclosed text' is never closed"
    assert reply.code is not None
    assert reply.code.startswith("!threat log [<dossier>] level=<1|2|3>")


async def test_unreadable_date_quotes_the_input() -> None:
    reply = await run("!remind at=someday call")
    assert reply.title.startswith("at: 'someday' is not a date or time I can read")


async def test_rest_typed_as_date() -> None:
    await run('!remind at="tomorrow 9:00" call   the   prefect')
    assert calls == [{"at": datetime(2026, 3, 5, 8, 0, tzinfo=UTC), "note": "call   the   prefect"}]


async def test_undeclared_key_value_is_a_plain_word_when_there_is_free_text() -> None:
    await run("!note x=y rest a=b")
    await run('!note "x=y z" a="b c"')
    assert calls == [
        {"title": "x=y", "body": "rest a=b"},
        {"title": "x=y z", "body": 'a="b c"'},
    ]
