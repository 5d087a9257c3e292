"""Exactly-once building blocks and the audit chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from storage import audit, outbox, runtime
from storage.db import Database
from storage.store import Store
from tests.support.databases import insider

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def test_event_is_claimed_once(database: Database) -> None:
    async with database.transaction() as s:
        assert await runtime.claim_event(s, "$a", "!r", NOW)
    async with database.transaction() as s:
        assert not await runtime.claim_event(s, "$a", "!r", NOW)
        assert await runtime.handled_among(s, ["$a", "$b"]) == {"$a"}


async def test_events_that_ask_for_nothing_are_marked_in_bulk(database: Database) -> None:
    """More marks than one statement holds, a duplicate, and one already claimed."""
    seen = [(f"$talk{i}", "!r") for i in range(2500)] + [("$talk7", "!r"), ("$cmd", "!r")]
    async with database.transaction() as s:
        assert await runtime.claim_event(s, "$cmd", "!r", NOW)
    async with database.transaction() as s:
        await runtime.mark_seen(s, seen, NOW)
        await runtime.mark_seen(s, [], NOW)
    async with database.transaction() as s:
        ids = [e for e, _ in seen] + ["$never"]
        assert await runtime.handled_among(s, ids) == {e for e, _ in seen}
        assert not await runtime.claim_event(s, "$talk2499", "!r", NOW)


async def test_claim_rolls_back_with_the_effect(database: Database) -> None:
    class Boom(Exception):
        pass

    try:
        async with database.transaction() as s:
            assert await runtime.claim_event(s, "$x", "!r", NOW)
            await outbox.enqueue(
                s,
                txn_id="t1",
                room_id="!r",
                event_type="m.room.message",
                content={"body": "hi"},
                now=NOW,
            )
            raise Boom
    except Boom:
        pass
    async with database.transaction() as s:
        assert await runtime.handled_among(s, ["$x"]) == set()
        assert await outbox.pending(s) == []


async def test_sync_cursor_and_join_points(database: Database) -> None:
    async with database.transaction() as s:
        assert await runtime.get_cursor(s) is None
        await runtime.set_cursor(s, "s1")
        await runtime.set_cursor(s, "s2")
        await runtime.record_join(s, "!r", 100)
        await runtime.record_join(s, "!r", 200)
    async with database.transaction() as s:
        assert await runtime.get_cursor(s) == "s2"
        assert await runtime.join_points(s) == {"!r": 100}


async def test_outbox_keeps_order_and_marks(database: Database) -> None:
    async with database.transaction() as s:
        for i in range(3):
            await outbox.enqueue(
                s,
                txn_id=f"t{i}",
                room_id="!r",
                event_type="m.room.message",
                content={"body": f"m{i}", "emoji": "✅"},
                now=NOW,
            )
    async with database.transaction() as s:
        rows = await outbox.pending(s)
        assert [r.content["body"] for r in rows] == ["m0", "m1", "m2"]
        assert rows[0].content["emoji"] == "✅"
        await outbox.mark_sent(s, rows[0].id, "$e0", NOW)
        await outbox.mark_failed(s, rows[1].id, "M_FORBIDDEN", NOW)
    async with database.transaction() as s:
        assert [r.txn_id for r in await outbox.pending(s)] == ["t2"]


async def _append(db: Database, n: int) -> None:
    async with db.transaction() as s:
        await Store(s).append_audit(
            actor=f"@u{n}:x",
            role="liaison",
            action="test",
            target="D-1",
            event_id=f"$e{n}",
            detail={"n": n},
            now=NOW,
        )


async def test_audit_chain_verifies_and_detects_tampering(database: Database) -> None:
    for n in range(5):
        await _append(database, n)
    async with database.transaction() as s:
        result = await audit.verify(s)
    assert result.ok and result.checked == 5
    async with insider(database) as s:
        await s.execute(text("UPDATE audit_log SET actor = '@mallory:x' WHERE seq = 3"))
    async with database.transaction() as s:
        result = await audit.verify(s)
    assert not result.ok and result.first_broken == 3


async def test_audit_detects_a_deleted_row(database: Database) -> None:
    for n in range(4):
        await _append(database, n)
    async with insider(database) as s:
        await s.execute(text("DELETE FROM audit_salts WHERE seq = 2"))
        await s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    async with database.transaction() as s:
        result = await audit.verify(s)
    assert result.first_broken == 3


async def test_concurrent_audit_appends_keep_one_chain(database: Database) -> None:
    await asyncio.gather(*(_append(database, n) for n in range(20)))
    async with database.transaction() as s:
        result = await audit.verify(s)
    assert result.ok and result.checked == 20


async def test_old_handled_marks_are_pruned(database: Database) -> None:
    async with database.transaction() as s:
        await runtime.claim_event(s, "$old", "!r", NOW - timedelta(days=40))
        await runtime.claim_event(s, "$new", "!r", NOW)
    async with database.transaction() as s:
        await runtime.forget_handled_before(s, NOW - timedelta(days=30))
    async with database.transaction() as s:
        assert await runtime.handled_among(s, ["$old", "$new"]) == {"$new"}


async def test_roles_version_moves_with_every_grant_and_revocation(database: Database) -> None:
    moment = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    versions = []
    async with database.transaction() as session:
        store = Store(session)
        versions.append(await store.roles_version())
        await store.set_role("@a:x", "approver", True, "@admin:x", moment)
        versions.append(await store.roles_version())
        await store.set_role("@a:x", "approver", False, "@admin:x", moment + timedelta(seconds=1))
        versions.append(await store.roles_version())
    assert versions[0] == (0, None)
    assert len(set(versions)) == 3
