"""The keyed audit chain against a database insider, on SQLite and PostgreSQL: a rewrite with
the chain recomputed without the key, a truncation of the last rows (seen against the
checkpoints), salts a purge deletes, the carry-over of an unkeyed chain, and the checkpoints
the bot queues for Matrix."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.anchor import Anchor, parse
from storage import audit
from storage.db import Database
from storage.store import Store
from tests.support.databases import insider
from workflow.anchoring import AnchorPolicy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAME = "Jan Peeters"


async def _append(db: Database, n: int, detail: dict[str, object] | None = None) -> int:
    async with db.transaction() as s:
        return await Store(s).append_audit(
            actor=f"@u{n}:x",
            role="liaison",
            action="dossier.note",
            target="D-2026-0001",
            event_id=f"$e{n}",
            detail=detail or {"n": n},
            now=NOW + timedelta(seconds=n),
        )


async def _verify(db: Database, *checkpoints: audit.Checkpoint) -> audit.VerifyResult:
    async with db.snapshot() as s:
        return await audit.verify(s, checkpoints)


def _insider_hash(how: str, payload: bytes) -> str:
    """What someone with write access but without the key can compute."""
    if how == "sha256":
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(b"aegis" * 8, payload, hashlib.sha256).hexdigest()


async def _rechain(
    db: Database, first: int, how: str, *, last: int | None = None, unkeyed: bool = False
) -> None:
    """Changes entry `first`'s target, then recomputes every hash from it to `last` (the
    head by default) and relinks each next entry, as an insider hiding the change would.
    `unkeyed` instead rewrites every entry as Aegis wrote them before the key (plain
    SHA-256 hashes, unsalted digests), unchanged otherwise."""
    async with insider(db) as s:
        if unkeyed:
            await s.execute(text("DELETE FROM audit_salts"))
        else:
            forge = text("UPDATE audit_log SET target = 'forged' WHERE seq = :s")
            await s.execute(forge, {"s": first})
        rows = (
            await s.execute(
                text("SELECT * FROM audit_log WHERE seq >= :a AND seq <= :b ORDER BY seq"),
                {"a": first, "b": last or 10**9},
            )
        ).all()
        before = text("SELECT hash FROM audit_log WHERE seq = :s")
        prev = audit.GENESIS if first == 1 else (await s.execute(before, {"s": first - 1})).scalar()
        for row in rows:
            at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
            digest = audit.detail_digest(row.detail) if unkeyed else row.detail_digest
            fields = {k: getattr(row, k) for k in ("actor", "role", "action", "target", "event_id")}
            payload = audit._payload(
                row.seq,
                at if at.tzinfo else at.replace(tzinfo=UTC),
                {**fields, "detail_sha256": digest},
                prev,
            )
            forged = _insider_hash(how, payload)
            await s.execute(
                text(
                    "UPDATE audit_log SET prev_hash = :p, hash = :h, detail_digest = :d "
                    "WHERE seq = :s"
                ),
                {"p": prev, "h": forged, "d": digest, "s": row.seq},
            )
            prev = forged
        relink = text("UPDATE audit_log SET prev_hash = :p WHERE seq = :s")
        await s.execute(relink, {"p": prev, "s": rows[-1].seq + 1})


@pytest.mark.parametrize("how", ["sha256", "guessed key"])
async def test_a_rewrite_with_the_chain_recomputed_is_reported_at_its_entry(
    database: Database, how: str
) -> None:
    for n in range(1, 6):
        await _append(database, n)
    assert (await _verify(database)).ok
    await _rechain(database, 3, how)
    result = await _verify(database)
    assert not result.ok
    assert result.first_broken == 3, result
    assert "not signed with the audit key" in result.reason


async def test_a_truncation_of_the_last_rows_is_reported_with_the_missing_range(
    database: Database,
) -> None:
    for n in range(1, 6):
        await _append(database, n)
    async with database.snapshot() as s:
        anchored = await audit.head(s)
    assert anchored == audit.Checkpoint(5, anchored.hash)
    async with insider(database) as s:
        await s.execute(text("DELETE FROM audit_salts WHERE seq >= 4"))
        await s.execute(text("DELETE FROM audit_log WHERE seq >= 4"))
    assert (await _verify(database)).ok  # the chain alone cannot tell
    result = await _verify(database, anchored)
    assert not result.ok and result.missing == (4, 5), result
    assert result.first_broken == 4 and "entries 4-5 missing" in result.reason
    # A checkpoint that disagrees with the row it names is a rewrite, whatever the chain says.
    async with database.snapshot() as s:
        second = (await s.execute(text("SELECT hash FROM audit_log WHERE seq = 2"))).scalar_one()
    assert (await _verify(database, audit.Checkpoint(2, second))).ok
    result = await _verify(database, audit.Checkpoint(2, "f" * 64))
    assert result.first_broken == 2 and "checkpoint" in result.reason


async def test_a_purge_deletes_the_salt_so_a_guessed_name_cannot_be_confirmed(
    database: Database,
) -> None:
    detail = {"person": NAME}
    seq = await _append(database, 1, detail)
    guessed = json.dumps(detail, sort_keys=True, ensure_ascii=False)
    async with database.snapshot() as s:
        digest = (
            await s.execute(text("SELECT detail_digest FROM audit_log WHERE seq = :s"), {"s": seq})
        ).scalar_one()
        salt = (
            await s.execute(text("SELECT salt FROM audit_salts WHERE seq = :s"), {"s": seq})
        ).scalar_one()
    assert digest != hashlib.sha256(guessed.encode()).hexdigest()  # no unsalted guess matches
    assert audit.salted_digest(salt, guessed) == digest  # only the salt confirms it
    async with database.transaction() as s:
        await audit.tombstone(s, [seq])
        await Store(s).append_audit(
            actor="cli:op",
            role="",
            action="dossier.purged",
            target="D-2026-0001",
            event_id="",
            detail={"tombstoned": [seq]},
            now=NOW,
        )
    async with database.snapshot() as s:
        left = (
            await s.execute(text("SELECT salt FROM audit_salts WHERE seq = :s"), {"s": seq})
        ).all()
        row = (
            await s.execute(
                text("SELECT detail, detail_digest FROM audit_log WHERE seq = :s"), {"s": seq}
            )
        ).one()
    assert left == [] and row.detail == audit.TOMBSTONE and row.detail_digest == digest
    assert NAME not in row.detail
    assert (await _verify(database)).ok


async def test_another_key_neither_verifies_nor_extends_the_chain(
    database: Database, database_url: str
) -> None:
    for n in range(1, 3):
        await _append(database, n)
    other = Database(database_url, b"another-key-that-is-long-enough-0123456789")
    try:
        async with other.snapshot() as s:
            result = await audit.verify(s)
        assert result.first_broken == 1
        with pytest.raises(audit.AuditKeyMismatch):
            async with other.transaction() as s:
                await audit.seal(s, NOW)
    finally:
        await other.close()
    keyless = Database(database_url)
    try:
        with pytest.raises(audit.MissingAuditKey):
            async with keyless.transaction() as s:
                await audit.append(s, audit.AuditRecord("@a:x", "", "t", "D-1", "", {}), NOW)
    finally:
        await keyless.close()


async def test_an_unkeyed_chain_is_carried_over_by_a_signed_checkpoint_of_its_head(
    database: Database,
) -> None:
    """A chain from before the key (plain SHA-256): the first keyed entry signs its head."""
    for n in range(1, 4):
        await _append(database, n)
    await _rechain(database, 1, "sha256", unkeyed=True)
    async with database.snapshot() as s:
        old_head = await audit.head(s)
    assert old_head is not None
    result = await _verify(database)
    assert result.first_broken == 1 and "no entry is signed" in result.reason
    async with database.transaction() as s:
        sealed = await audit.seal(s, NOW)
    assert sealed is not None and sealed.seq == 4
    async with database.snapshot() as s:
        rekey = (
            await s.execute(text("SELECT action, detail, prev_hash FROM audit_log WHERE seq = 4"))
        ).one()
    assert rekey.action == audit.REKEY and rekey.prev_hash == old_head.hash
    assert json.loads(rekey.detail) == {"head_seq": 3, "head_hash": old_head.hash}
    assert (await _verify(database)).ok
    await _append(database, 5)
    assert (await _verify(database)).checked == 5
    # Rewriting the unkeyed part and rechaining it no longer links to the signed checkpoint.
    await _rechain(database, 2, "sha256", last=3)
    result = await _verify(database)
    assert result.first_broken == 4, result


async def test_checkpoints_are_queued_every_n_entries_and_at_shutdown(
    database: Database,
) -> None:
    anchor = Anchor(database, "!audit:x", AnchorPolicy(3, timedelta(hours=1)), NOW)
    assert await anchor.tick(NOW) is None  # an empty trail has nothing to anchor
    for n in range(1, 3):
        await _append(database, n)
    assert await anchor.tick(NOW) is None
    assert await anchor.next_due() == NOW + timedelta(hours=1)
    await _append(database, 3)
    queued = await anchor.tick(NOW)
    assert queued is not None and queued.seq == 3
    assert await anchor.tick(NOW) is None and await anchor.next_due() is None
    await _append(database, 4)
    assert await anchor.tick(NOW + timedelta(minutes=59)) is None
    closing = await anchor.tick(NOW + timedelta(minutes=1), closing=True)
    assert closing is not None and closing.seq == 4
    async with database.snapshot() as s:
        rows = (
            await s.execute(
                text("SELECT ref, room_id, content FROM outbox WHERE ref LIKE 'CK-%' ORDER BY id")
            )
        ).all()
        head = await audit.head(s)
    assert [(r.ref, r.room_id) for r in rows] == [("CK-3", "!audit:x"), ("CK-4", "!audit:x")]
    assert parse(json.loads(rows[-1].content)) == head
    assert json.loads(rows[-1].content)["body"] == f"Audit checkpoint: entry 4, hash {head.hash}"
