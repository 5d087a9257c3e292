"""The audit trail: append-only and chained with an HMAC whose key is never in the database,
so someone who can write the database can neither alter, nor remove, nor rewrite-and-rechain
a row unseen. A truncation of the last rows leaves a valid chain; the checkpoints posted in
Matrix (bot/anchor.py) reveal it.

Each row's hash covers a digest of its detail rather than the detail itself, so that
retention can replace a detail holding personal data by a tombstone and the chain still
verifies. The digest is keyed by a random salt per entry (`audit_salts`) that the purge
deletes with the detail: what is left can no longer confirm a guessed name. A tombstoned row
must be named (under `TOMBSTONED`) by a later entry, the record of the purge; a detail that
was tombstoned without one, or altered, is reported as broken.

A chain written before the key existed (plain SHA-256, unsalted digests) is carried over:
the first keyed entry is an `audit.rekey` checkpoint naming the old head's seq and hash,
signed with the key and chained to that head. `verify` checks the unkeyed part as before up
to it; from it on, every entry must be signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, text, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import AUDIT_KEY
from storage.runtime import dialect
from storage.tables import AuditEntry, AuditRead, AuditSalt
from workflow.privacy import READ

GENESIS = "0" * 64
TOMBSTONE = json.dumps({"purged": True})
TOMBSTONED = "tombstoned"  # detail key of a purge record: the seqs it tombstoned
REKEY = "audit.rekey"  # the first keyed entry after an unkeyed chain: its old head, signed
SYSTEM = "aegis"  # actor of the entries the trail writes about itself
_CHAIN_LOCK = 0x4145_4749  # "AEGI": serialises appends on PostgreSQL


class MissingAuditKey(RuntimeError):
    """Appending or verifying needs the key: a database opened without it may only read."""


class AuditKeyMismatch(RuntimeError):
    """The chain's last entry is signed neither with this key nor (an old chain) unkeyed:
    the wrong key is configured, or the trail was rewritten. Appending would fork it."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        super().__init__(
            f"the audit key does not sign the audit trail's last entry ({seq}): another key "
            "is configured than the one that signed it, or the trail was rewritten; run "
            "`aegis audit verify` (docs/operations.md)"
        )


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    role: str
    action: str
    target: str
    event_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """A chain head posted outside the database: entry `seq` had hash `hash`."""

    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_broken: int | None
    reason: str = ""
    missing: tuple[int, int] | None = None
    """First and last seq of rows a checkpoint proves existed and the database lacks."""

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def _payload(seq: int, at: datetime, fields: dict[str, str], prev_hash: str) -> bytes:
    return json.dumps(
        {"seq": seq, "at": at.isoformat(), "prev": prev_hash, **fields},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _signed(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _unkeyed(payload: bytes) -> str:
    """How entries were chained before the key: anyone can recompute it."""
    return hashlib.sha256(payload).hexdigest()


def detail_digest(detail: str) -> str:
    """The unsalted digest of entries written before the key (kept for verifying them)."""
    return hashlib.sha256(detail.encode()).hexdigest()


def salted_digest(salt: str, detail: str) -> str:
    return hmac.new(bytes.fromhex(salt), detail.encode(), hashlib.sha256).hexdigest()


def _fields(entry: AuditEntry | AuditRecord, digest: str) -> dict[str, str]:
    return {
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "target": entry.target,
        "event_id": entry.event_id,
        "detail_sha256": digest,
    }


def _key(session: AsyncSession) -> bytes:
    key = session.info.get(AUDIT_KEY)
    if not isinstance(key, bytes):
        raise MissingAuditKey("this database was opened without the audit key")
    return key


def _at(entry: AuditEntry) -> datetime:
    return entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)


def _entry_payload(entry: AuditEntry) -> bytes:
    return _payload(entry.seq, _at(entry), _fields(entry, entry.detail_digest), entry.prev_hash)


async def _last(session: AsyncSession) -> AuditEntry | None:
    return (
        await session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
    ).first()


def _add(
    session: AsyncSession, key: bytes, record: AuditRecord, seq: int, prev: str, at: datetime
) -> str:
    detail = json.dumps(record.detail, sort_keys=True, ensure_ascii=False)
    salt = secrets.token_hex(32)
    digest = salted_digest(salt, detail)
    signature = _signed(key, _payload(seq, at, _fields(record, digest), prev))
    session.add(
        AuditEntry(
            seq=seq,
            at=at,
            actor=record.actor,
            role=record.role,
            action=record.action,
            target=record.target,
            event_id=record.event_id,
            detail=detail,
            detail_digest=digest,
            prev_hash=prev,
            hash=signature,
        )
    )
    session.add(AuditSalt(seq=seq, salt=salt))
    return signature


async def _keyed_head(session: AsyncSession, key: bytes, at: datetime) -> tuple[int, str]:
    """(seq, hash) of the head to chain onto, signed with `key`: an unkeyed head (a chain
    carried over from before the key) gets its `audit.rekey` checkpoint first."""
    last = await _last(session)
    if last is None:
        return 0, GENESIS
    payload = _entry_payload(last)
    if hmac.compare_digest(_signed(key, payload), last.hash):
        return last.seq, last.hash
    if _unkeyed(payload) != last.hash and await _ever_keyed(session):
        raise AuditKeyMismatch(last.seq)
    # An unkeyed chain, intact or already broken before the key: `verify` reports the break.
    checkpoint = AuditRecord(
        SYSTEM, "system", REKEY, "audit", "", {"head_seq": last.seq, "head_hash": last.hash}
    )
    seq = last.seq + 1
    return seq, _add(session, key, checkpoint, seq, last.hash, at)


async def _ever_keyed(session: AsyncSession) -> bool:
    """Whether a key already signed this chain: keyed entries have salts, and a carried-over
    chain its rekey entry. An unkeyed chain has neither."""
    if await session.scalar(select(AuditSalt.seq).limit(1)) is not None:
        return True
    rekeyed = select(AuditEntry.seq).where(AuditEntry.action == REKEY).limit(1)
    return await session.scalar(rekeyed) is not None


async def _lock(session: AsyncSession) -> None:
    if dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})


async def append(session: AsyncSession, record: AuditRecord, now: datetime) -> int:
    """Appends under a chain lock, so two writers never fork the chain."""
    key = _key(session)
    await _lock(session)
    # Microseconds are dropped: not every backend round-trips them identically.
    at = now.replace(microsecond=0)
    last_seq, prev_hash = await _keyed_head(session, key, at)
    _add(session, key, record, last_seq + 1, prev_hash, at)
    return last_seq + 1


async def seal(session: AsyncSession, now: datetime) -> Checkpoint | None:
    """The start-time step: the chain's head is signed with the configured key (a chain
    from before the key gets its rekey checkpoint now). Raises AuditKeyMismatch when the
    head is signed otherwise, so the bot never forks a chain under a wrong key."""
    key = _key(session)
    await _lock(session)
    seq, head = await _keyed_head(session, key, now.replace(microsecond=0))
    return Checkpoint(seq, head) if seq else None


async def head(session: AsyncSession) -> Checkpoint | None:
    """The chain's last entry: what a checkpoint anchors."""
    last = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    return Checkpoint(int(last[0]), str(last[1])) if last else None


class _Walk:
    """The state of one verification pass, entry by entry."""

    def __init__(self, key: bytes, checkpoints: Sequence[Checkpoint]) -> None:
        self.key = key
        self.anchors = {c.seq: c.hash for c in checkpoints}
        self.prev_hash, self.expected_seq, self.checked = GENESIS, 1, 0
        self.keyed = False  # from the first signed entry on, every entry must be signed
        self.unaccounted: set[int] = set()  # tombstoned, not (yet) named by a purge record

    def problem(self, entry: AuditEntry, salt: str | None, refs: str | None) -> str | None:
        if entry.seq != self.expected_seq:
            return f"expected entry {self.expected_seq}: rows missing"
        if entry.prev_hash != self.prev_hash:
            return "does not link to the entry before it"
        payload = _entry_payload(entry)
        if hmac.compare_digest(_signed(self.key, payload), entry.hash):
            if not self.keyed and entry.seq != 1 and entry.action != REKEY:
                return "signed, but follows unsigned entries without a rekey checkpoint"
            self.keyed = True
        elif self.keyed:
            return "does not match its hash: rewritten, or not signed with the audit key"
        elif _unkeyed(payload) != entry.hash:
            return "content does not match its hash"
        if entry.detail == TOMBSTONE:
            self.unaccounted.add(entry.seq)
        elif not self._detail_matches(entry, salt):
            return "detail does not match its digest"
        else:
            self.unaccounted.difference_update(_tombstoned_by(entry.detail))
        if set(refs.split(",") if refs else ()) != _displayed(entry):
            return "read index does not match the entry"
        anchored = self.anchors.get(entry.seq)
        if anchored is not None and anchored != entry.hash:
            return "does not match the checkpoint posted in Matrix"
        return None

    def _detail_matches(self, entry: AuditEntry, salt: str | None) -> bool:
        if not self.keyed:
            return detail_digest(entry.detail) == entry.detail_digest
        return salt is not None and salted_digest(salt, entry.detail) == entry.detail_digest

    def end(self) -> VerifyResult:
        last = self.expected_seq - 1
        anchored = max(self.anchors, default=0)
        if anchored > last:
            return VerifyResult(
                self.checked,
                last + 1,
                f"entries {last + 1}-{anchored} missing: a checkpoint posted in Matrix "
                f"names entry {anchored}, the database ends at {last}",
                (last + 1, anchored),
            )
        if self.checked and not self.keyed:
            return VerifyResult(self.checked, 1, "no entry is signed with the audit key")
        if self.unaccounted:
            first = min(self.unaccounted)
            return VerifyResult(self.checked, first, "detail removed without a purge record")
        return VerifyResult(self.checked, None)


async def verify(session: AsyncSession, checkpoints: Sequence[Checkpoint] = ()) -> VerifyResult:
    """Checks the chain with the key, and against `checkpoints` (heads posted in Matrix):
    a rewrite is reported at its first bad entry, a truncation with the missing range."""
    walk = _Walk(_key(session), checkpoints)
    filed = (
        select(func.aggregate_strings(AuditRead.dossier_ref, ","))
        .where(AuditRead.seq == AuditEntry.seq)
        .scalar_subquery()
    )
    salt = select(AuditSalt.salt).where(AuditSalt.seq == AuditEntry.seq).scalar_subquery()
    rows = await session.stream(select(AuditEntry, salt, filed).order_by(AuditEntry.seq))
    async for entry, entry_salt, refs in rows:
        walk.checked += 1
        problem = walk.problem(entry, entry_salt, refs)
        if problem is not None:
            return VerifyResult(walk.checked, entry.seq, problem)
        walk.prev_hash, walk.expected_seq = entry.hash, walk.expected_seq + 1
    return walk.end()


def _displayed(entry: AuditEntry) -> set[str]:
    """The dossiers `audit_reads` must file a verified entry under: those a read names, or
    its target if its detail was tombstoned or predates the list; none for other entries."""
    if entry.action != READ:
        return set()
    if entry.detail != TOMBSTONE:
        parsed = json.loads(entry.detail)
        listed = parsed.get("dossiers") if isinstance(parsed, dict) else None
        if isinstance(listed, list):
            return {str(ref) for ref in listed}
    return {entry.target}


def _tombstoned_by(detail: str) -> list[int]:
    if TOMBSTONED not in detail:
        return []
    parsed = json.loads(detail)
    named = parsed.get(TOMBSTONED) if isinstance(parsed, dict) else None
    return [seq for seq in named if isinstance(seq, int)] if isinstance(named, list) else []


async def tombstone(session: AsyncSession, seqs: list[int]) -> None:
    """Replaces the details of these entries by the tombstone and deletes their salts; their
    digests stay, so the chain verifies once a later entry names them under `TOMBSTONED`,
    but without the salt a digest can no longer confirm a guessed detail. On PostgreSQL a trigger
    refuses any other change to `audit_log` and the runtime role may not UPDATE it, so this
    goes through the function migration 0018 made for it, which writes TOMBSTONE and only
    that (tests/test_pg_roles.py holds the two to the same text)."""
    if not seqs:
        return
    await session.execute(delete(AuditSalt).where(AuditSalt.seq.in_(seqs)))
    if dialect(session) == "postgresql":
        await session.execute(text("SELECT aegis_audit_tombstone(:seqs)"), {"seqs": seqs})
    else:
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq.in_(seqs)).values(detail=TOMBSTONE)
        )


@dataclass(frozen=True)
class AuditRecordRow:
    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    event_id: str
    detail: dict[str, Any]


def _record_row(r: AuditEntry) -> AuditRecordRow:
    return AuditRecordRow(
        r.seq,
        r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
        r.actor,
        r.role,
        r.action,
        r.target,
        r.event_id,
        json.loads(r.detail),
    )


def _about(targets: list[str], ref: str) -> ColumnElement[bool]:
    """Entries recorded with one of these targets, or reads that displayed dossier `ref`
    among others (through `audit_reads`, so both halves are index lookups)."""
    seqs = union(
        select(AuditEntry.seq).where(AuditEntry.target.in_(targets)),
        select(AuditRead.seq).where(AuditRead.dossier_ref == ref),
    )
    return AuditEntry.seq.in_(seqs)


async def index_read(session: AsyncSession, seq: int, refs: list[str]) -> None:
    """Files read entry `seq` under each dossier it displayed."""
    if refs:
        await session.execute(insert(AuditRead), [{"dossier_ref": r, "seq": seq} for r in refs])


async def entries_for(session: AsyncSession, ref: str) -> list[AuditRecordRow]:
    """A dossier's own trail, for exports: everything recorded with it as the target, and
    every read that displayed it."""
    rows = await session.scalars(
        select(AuditEntry).where(_about([ref], ref)).order_by(AuditEntry.seq)
    )
    return [_record_row(r) for r in rows]


async def seqs_for(session: AsyncSession, targets: list[str]) -> list[int]:
    """Entries about any of these targets whose detail is not tombstoned yet. A read that
    listed a dossier among others is not about it: its detail names dossier IDs only."""
    rows = await session.scalars(
        select(AuditEntry.seq)
        .where(AuditEntry.target.in_(targets), AuditEntry.detail != TOMBSTONE)
        .order_by(AuditEntry.seq)
    )
    return list(rows)


async def page_for(
    session: AsyncSession, targets: list[str], ref: str, offset: int, limit: int
) -> tuple[list[AuditRecordRow], int]:
    """A dossier's trail (its targets, and the reads that displayed `ref`), newest first, and
    how many entries there are in all."""
    where = _about(targets, ref)
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(where))
    rows = await session.scalars(
        select(AuditEntry).where(where).order_by(AuditEntry.seq.desc()).offset(offset).limit(limit)
    )
    return [_record_row(r) for r in rows], int(total or 0)


async def readers_of(session: AsyncSession, ref: str) -> list[tuple[str, int, datetime]]:
    """(actor, how many reads, last read) of dossier `ref`, latest first: every command that
    displayed it, alone or in a listing."""
    last = func.max(AuditEntry.at)
    rows = await session.execute(
        select(AuditEntry.actor, func.count(), last)
        .join(AuditRead, AuditRead.seq == AuditEntry.seq)
        .where(AuditRead.dossier_ref == ref)
        .group_by(AuditEntry.actor)
        .order_by(last.desc(), AuditEntry.actor)
    )
    return [
        (actor, int(n), at if at.tzinfo else at.replace(tzinfo=UTC)) for actor, n, at in rows.all()
    ]
