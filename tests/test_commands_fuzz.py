"""Whatever a sender types, the framework answers with a Reply and never raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands import Dispatcher, Reply
from config import Role
from storage.db import Database
from tests.commands_fakes import make_context, test_registry
from tests.support.chat import Chat
from tests.support.databases import TEST_AUDIT_KEY

_QUOTES = ['"', "'", "“", "”", "„", "‘", "’", "«", "»"]
_WORDS = [
    "help",
    "ping",
    "threat",
    "log",
    "list",
    "grant",
    "count",
    "remind",
    "tl",
    "crash",
    "D-2026-0007",
    "D-",
    "@bob:example.org",
    "@",
    "level=3",
    "source=OCAD",
    "review=",
    "at=",
    "notify=yes",
    "x=y",
    "=",
    "==",
    "tomorrow",
    "volgende",
    "vrijdag",
    "14u",
    "9h30",
    "dossier",
    "open",
    "person",
    "event",
    "show",
    "find",
    "note",
    "edit",
    "close",
    "timeline",
    "export",
    "role",
    "revoke",
    "level>=",
    "category=summit",
    "D-2026-0001",
]
_word = st.one_of(
    st.sampled_from(_WORDS),
    st.text(max_size=12),
    st.sampled_from(_QUOTES),
    st.builds(
        lambda key, quote, value: f"{key}={quote}{value}",
        st.sampled_from(["level", "source", "review", "at", "notify", "x", "Z9"]),
        st.sampled_from(["", *_QUOTES]),
        st.text(max_size=20),
    ),
)
_separator = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000", "", "\x00"])
_command_like = st.builds(
    lambda prefix, words, seps: (
        prefix + "".join(w + s for w, s in zip(words, seps + [" "] * len(words), strict=False))
    ),
    st.sampled_from(["!", "", " !", "!!"]),
    st.lists(_word, max_size=12),
    st.lists(_separator, max_size=12),
)
_garbled = st.one_of(
    _command_like,
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50).map(lambda t: "!" + t),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=50).map(lambda t: "!ping" + t),
    st.integers(min_value=4000, max_value=9000).map(lambda n: "!help " + "x" * n),
    st.binary(max_size=100).map(lambda b: "!" + b.decode("utf-8", errors="surrogateescape")),
)
_roles = st.frozensets(st.sampled_from(list(Role)))
FUZZER = "@fuzzer:aegis.test"


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}", TEST_AUDIT_KEY.encode())
    await db.migrate()
    yield db
    await db.close()


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one database for all examples, on purpose
    ],
)
@given(body=_garbled, roles=_roles)
async def test_real_registry_always_replies(
    sqlite: Database, body: str, roles: frozenset[Role]
) -> None:
    """Through the real workflow and database: every command family, not only the parser."""
    reply = await Chat(sqlite, {FUZZER: set(roles)}).say(FUZZER, body)
    assert isinstance(reply, Reply)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=_garbled, roles=_roles)
async def test_every_argument_kind_always_replies(body: str, roles: frozenset[Role]) -> None:
    ctx, _ = make_context(*roles)
    if body.lstrip().lower().startswith("!crash"):
        return
    reply = await Dispatcher(test_registry, "!", 4096).dispatch(body, ctx)
    assert isinstance(reply, Reply)
