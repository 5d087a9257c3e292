"""`!dossier find`: case and accents never decide a match, every searched field is indexed
and kept current by every write, a purge leaves no terms, and the query is an index range
scan. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from commands import Reply, Severity
from config import Role
from storage.db import Database
from storage.search import _matching
from tests.support.chat import Chat, text_of
from tests.test_retention import _upgrade, old_dossier_full_of_personal_data, purge
from workflow.search import after_prefix, fold, query_words, terms

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
ADMIN = "@adm:aegis.test"
READER = "@police:aegis.test"
MINA = "@mina:aegis.test"


@pytest.fixture
def chat(database: Database) -> Chat:
    return Chat(
        database,
        {
            LIAISON: {Role.LIAISON},
            ANALYST: {Role.ANALYST},
            ADMIN: {Role.ADMIN},
            READER: {Role.ANALYST},
            MINA: {Role.APPROVER},
        },
    )


async def open_dossier(chat: Chat, words: str) -> str:
    reply = await chat.say(LIAISON, f"!dossier open {words}")
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    return reply.title.removeprefix("Opened ")


def refs(reply: Reply) -> list[str]:
    return [line.split(" · ")[0] for line in reply.lines]


async def found(chat: Chat, query: str) -> list[str]:
    reply = await chat.say(READER, f"!dossier find {query}")
    assert reply.severity is Severity.INFO, text_of(reply)
    return refs(reply)


async def terms_of(db: Database, ref: str) -> list[tuple[str, str]]:
    async with db.transaction() as s:
        rows = await s.execute(
            text(
                "SELECT field, term FROM dossier_terms JOIN dossiers ON dossiers.id = dossier_id "
                "WHERE ref = :ref ORDER BY field, term"
            ),
            {"ref": ref},
        )
        return [(str(field), str(term)) for field, term in rows]


# ----------------------------------------------------------------------------- words


def test_fold_removes_case_and_accents() -> None:
    assert fold("ISRAËL") == fold("Israël") == fold("israel") == "israel"
    assert fold("Ærøskøbing Straße Çelik") == "ærøskøbing strasse celik"
    assert fold("ﬁle") == "file"  # compatibility forms too


def test_terms_keep_tokens_and_their_parts() -> None:
    assert terms("Réf. BZ/2026/117, D-2026-0007 à Liège!") == {
        "ref",
        "bz/2026/117",
        "bz",
        "2026",
        "117",
        "d-2026-0007",
        "0007",
        "liege",
    }


def test_query_words_read_dossier_ids_in_any_spelling() -> None:
    assert query_words("d-2026-1 Israël x") == ["d-2026-0001", "israel"]
    assert query_words("D-2026-01, grey  VAN grey") == ["d-2026-0001", "grey", "van"]
    assert query_words("% x !") == []


def test_after_prefix_bounds_exactly_the_words_starting_with_it() -> None:
    end = after_prefix("isr")
    assert "isr" < "israel" < "isrzzz" < "isr\U0010ffff" < end <= "iss"
    assert after_prefix("a\U0010ffff") == "b"
    assert after_prefix("a\ud7ff") == "a\ue000"


# ----------------------------------------------------------------------------- find


async def test_find_ignores_case_and_accents_and_says_what_matched(chat: Chat) -> None:
    family = await open_dossier(
        chat, 'person "Family visit" category=diplomat subjects="Israël Cohen, Léa Cohen"'
    )
    title = await open_dossier(chat, 'event "Visite du président d\'ISRAEL" category=visit')
    await open_dossier(chat, 'event "Other visit"')
    for query in ("israel", "ISRAËL", "Israël", "isra"):
        assert sorted(await found(chat, query)) == sorted([family, title]), query
    reply = await chat.say(READER, "!dossier find israel")
    assert reply.title == "2 found for “israel”" and reply.carries is not None
    lines = dict(zip(refs(reply), reply.lines, strict=True))
    assert lines[family].endswith("· matched: person Israël Cohen")
    assert lines[title] == f"{title} · Visite du président d'ISRAEL · open · matched: title"
    assert await found(chat, "lea cohen") == [family]
    assert await found(chat, "PRÉSIDENT") == [title]


async def test_find_searches_category_reference_id_and_notes(chat: Chat) -> None:
    embassy = await open_dossier(
        chat, 'institution "Embassy of Ruritania" category=embassy ref=BZ/2026/117'
    )
    summit = await open_dossier(chat, 'event "Spring meeting" category=summit ref=NCCN-77')
    await chat.say(LIAISON, f"!dossier note {summit} a grey van seen near the residence")
    assert await found(chat, "embassy") == [embassy]
    assert await found(chat, "summit") == [summit]
    assert await found(chat, "BZ/2026") == [embassy]
    assert await found(chat, "117") == [embassy]
    assert await found(chat, "nccn-77") == [summit]
    assert await found(chat, "Grey Van") == [summit]
    assert await found(chat, embassy.lower()) == [embassy]
    assert await found(chat, "d-2026-1") == [embassy]
    reply = await chat.say(READER, "!dossier find grey")
    assert reply.lines[0].endswith("matched: note")


async def test_every_word_must_match(chat: Chat) -> None:
    ruritania = await open_dossier(chat, 'institution "Embassy of Ruritania" category=embassy')
    await open_dossier(chat, 'institution "Embassy of Borduria" category=embassy')
    assert await found(chat, "embassy ruritania") == [ruritania]
    assert "Nothing found" in (await chat.say(READER, "!dossier find ruritania borduria")).title
    too_short = await chat.say(READER, "!dossier find x")
    assert too_short.severity is Severity.ERROR and "at least 2 characters" in too_short.title


async def test_writes_keep_the_index_current(chat: Chat, database: Database) -> None:
    ref = await open_dossier(chat, 'person "Visit of Anna" subjects="Anna Åström"')
    assert await found(chat, "astrom") == [ref]
    await chat.say(LIAISON, f'!dossier edit {ref} title="Protection of Bert"')
    await chat.say(LIAISON, f'!dossier person rename {ref}/1 "Anneke Åberg"')
    assert "Nothing found" in (await chat.say(READER, "!dossier find astrom")).title
    assert await found(chat, "aberg anneke") == [ref]
    await chat.say(LIAISON, f'!dossier person add {ref} "Bert Çelik"')
    assert await found(chat, "celik bert") == [ref]
    await chat.say(LIAISON, f"!dossier person remove {ref}/2")
    assert "Nothing found" in (await chat.say(READER, "!dossier find celik")).title
    assert "Nothing found" in (await chat.say(READER, "!dossier find anna")).title
    await chat.say(LIAISON, f"!dossier edit {ref} ref=ÉLYSÉE/42 category=minister")
    assert await found(chat, "elysee/42") == [ref]
    assert await found(chat, "minister") == [ref]
    await chat.say(LIAISON, f"!dossier note {ref} convoy leaves from Zürich")
    assert await found(chat, "zurich") == [ref]
    assert ("note", "zurich") in await terms_of(database, ref)


async def test_a_listing_names_how_many_match_in_all(chat: Chat) -> None:
    made = [await open_dossier(chat, f'event "Summit {n}"') for n in range(22)]
    reply = await chat.say(READER, "!dossier find summit")
    assert reply.title == "22 found for “summit”, the 20 most recently active shown"
    assert refs(reply) == made[::-1][:20]


async def test_a_purge_leaves_no_search_terms(chat: Chat, database: Database) -> None:
    old = await old_dossier_full_of_personal_data(chat)
    assert await terms_of(database, old)
    assert await found(chat, "peeters") == [old]
    chat.advance(days=365 * 5 + 5)
    assert list(await purge(chat)) == [old]
    assert await terms_of(database, old) == []
    for query in ("peeters", "ruritania", "BZ/2020/117", old, "purged"):
        assert "Nothing found" in (await chat.say(READER, f"!dossier find {query}")).title


def _plan(connection: Connection) -> str:
    """The database's own plan for one query word's range scan."""
    query = _matching("israel").compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
        return "\n".join(str(row[-1]) for row in rows)
    # Whatever the table's size, a plan that can use the index must use it now.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {query}"))


async def test_a_query_word_is_a_range_scan_of_the_term_index(
    chat: Chat, database: Database
) -> None:
    await open_dossier(chat, 'person "Visit" subjects="Israël Cohen"')
    async with database.engine.begin() as conn:
        plan = await conn.run_sync(_plan)
    assert "ix_dossier_terms_term" in plan, plan
    assert "SCAN dossier_terms" not in plan and "Seq Scan" not in plan, plan


async def test_the_migration_indexes_existing_dossiers(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0011_audience")
            await conn.execute(
                text(
                    "INSERT INTO dossiers (id, ref, kind, category, title, status, external_ref,"
                    " created_by, created_at, updated_at, purged_at) VALUES"
                    " (1, 'D-2026-0001', 'person', 'other', 'Visite', 'open', 'RÉF/9', 'x',"
                    " '2026-01-01', '2026-01-01', NULL),"
                    " (2, 'D-2026-0002', 'person', 'other', '(purged)', 'closed', NULL, 'x',"
                    " '2026-01-01', '2026-01-01', '2026-02-01')"
                )
            )
            await conn.execute(
                text("INSERT INTO dossier_subjects (dossier_id, name) VALUES (1, 'Israël')")
            )
            await conn.execute(
                text(
                    "INSERT INTO dossier_notes (dossier_id, author, text, created_at, event_id)"
                    " VALUES (1, 'x', 'à Gent', '2026-01-01', '$n')"
                )
            )
        await db.migrate()
        assert await terms_of(db, "D-2026-0001") == [
            ("ID", "0001"),
            ("ID", "2026"),
            ("ID", "d-2026-0001"),
            ("category", "other"),
            ("note", "gent"),
            ("reference", "ref"),
            ("reference", "ref/9"),
            ("subject", "israel"),
            ("title", "visite"),
        ]
        assert await terms_of(db, "D-2026-0002") == []
    finally:
        await db.close()
