"""IDs as people type them: any spelling of an ID means that ID, a wrong ID gets the closest
existing ones the sender may see (never an example that might not exist), and text where an
ID should be gets a search to try. Through the dispatcher, on both databases."""

from __future__ import annotations

import re

import pytest

from commands import Severity
from config import Role
from storage.db import Database
from tests.support.chat import Chat, text_of
from workflow.refs import closest, normal_ref

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
POLICE = "@police:aegis.test"
_IDS = re.compile(r"\b(?:D-\d{4}-\d+|[MP]-\d+)\b")


@pytest.fixture
def chat(database: Database) -> Chat:
    return Chat(database, {LIAISON: {Role.LIAISON}, ANALYST: {Role.ANALYST}, POLICE: {Role.POLICE}})


async def open_dossiers(chat: Chat, n: int) -> list[str]:
    made = []
    for i in range(n):
        reply = await chat.say(LIAISON, f'!dossier open person "Visit {i}"')
        assert reply.severity is Severity.SUCCESS, text_of(reply)
        made.append(reply.title.removeprefix("Opened "))
    return made


def test_one_spelling_per_dossier_id() -> None:
    for typed in ("D-2026-1", "d-2026-0001", "d-2026-01", " D-2026-00001 "):
        assert normal_ref(typed) == "D-2026-0001", typed
    assert normal_ref("D-2026-12345") == "D-2026-12345"
    assert normal_ref("D-26-1") is None and normal_ref("Israel") is None


def test_closest_ids_are_existing_ones_by_likeness_then_number() -> None:
    existing = [f"M-{n}" for n in range(1, 10) if n != 5]
    assert closest("M-5", existing)[0] in ("M-4", "M-6")
    assert closest("M-5", []) == []
    # No ID a typo or two away: the nearest numbers of the same series.
    assert set(closest("M-100", ["M-1", "M-12", "P-100"])) == {"M-1", "M-12"}
    assert closest("D-2031-0450", ["D-2026-0001", "D-2031-0007", "D-2031-0399"]) == [
        "D-2031-0399",
        "D-2031-0007",
    ]
    assert closest("D-2026-0019", ["D-2026-0001", "D-2026-0009", "D-2026-0018"]) == [
        "D-2026-0018",
        "D-2026-0009",
        "D-2026-0001",
    ]


async def test_any_spelling_of_an_id_means_that_id(chat: Chat) -> None:
    first = (await open_dossiers(chat, 1))[0]
    assert first == "D-2026-0001"
    for typed in ("D-2026-1", "d-2026-0001", "d-2026-01"):
        reply = await chat.say(ANALYST, f"!dossier show {typed}")
        assert reply.title == "D-2026-0001 — Visit 0", typed
    proposed = await chat.say(LIAISON, "!measure propose d-2026-1 patrol at the residence")
    assert proposed.severity is not Severity.ERROR, text_of(proposed)
    assert (await chat.say(ANALYST, "!measure show m-0001")).title.startswith("M-1 — patrol")


async def test_a_wrong_id_gets_the_closest_existing_ids(chat: Chat) -> None:
    await open_dossiers(chat, 12)
    reply = await chat.say(ANALYST, "!dossier show D-2026-0019")
    assert reply.severity is Severity.ERROR and reply.title == "no dossier D-2026-0019"
    assert reply.lines == ("Did you mean D-2026-0012 or D-2026-0011 or D-2026-0010?",)
    assert reply.carries is None  # IDs only
    missing_measure = await chat.say(ANALYST, "!measure show M-4")
    assert missing_measure.title == "no measure M-4" and missing_measure.lines == ()
    await chat.say(LIAISON, "!measure propose D-2026-0001 patrol at the residence")
    assert (await chat.say(ANALYST, "!measure show M-4")).lines == ("Did you mean M-1?",)


async def test_ids_are_suggested_only_to_who_may_read_them(chat: Chat) -> None:
    await open_dossiers(chat, 3)
    reply = await chat.say(POLICE, "!dossier show D-2026-0004")
    assert reply.title == "no dossier D-2026-0004" and reply.lines == ()


async def test_text_where_an_id_should_be_gets_a_search_to_try(chat: Chat) -> None:
    await open_dossiers(chat, 1)
    one = await chat.say(ANALYST, "!dossier show Israel")
    assert one.severity is Severity.ERROR
    assert "try !dossier find Israel" in one.title, text_of(one)
    two = await chat.say(ANALYST, "!dossier timeline Jan Peeters")
    assert "try !dossier find Jan Peeters" in two.title, text_of(two)
    # Words that another argument takes: the ID is what is missing.
    elsewhere = await chat.say(LIAISON, "!measure propose patrol at the residence")
    assert "name the dossier" in elsewhere.title, text_of(elsewhere)


async def test_no_error_shows_an_example_id(chat: Chat) -> None:
    made = await open_dossiers(chat, 2)
    for typed in (
        "!dossier show D-2026",
        "!dossier show D-",
        "!dossier show Israel",
        "!dossier timeline",
        "!measure show M-x",
        "!proposal withdraw P-",
        "!dossier show D-2026-0099",
    ):
        shown = text_of(await chat.say(ANALYST, typed))
        ids = set(_IDS.findall(shown)) - set(_IDS.findall(typed))  # the sender's own aside
        assert ids <= set(made), (typed, shown)
