"""The audit trail: append-only and hash-chained, so an altered or removed row is detectable.

Each row's hash covers a SHA-256 digest of its detail rather than the detail itself, so that
retention can replace a detail holding personal data by a tombstone and the chain still
verifies. A tombstoned row must be named (under `TOMBSTONED`) by a later entry, the record of
the purge; a detail that was tombstoned without one, or altered, is reported as broken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, text, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.runtime import dialect
from storage.tables import AuditEntry, AuditRead
from workflow.privacy import READ

GENESIS = "0" * 64
TOMBSTONE = json.dumps({"purged": True})
TOMBSTONED = "tombstoned"  # detail key of a purge record: the seqs it tombstoned
_CHAIN_LOCK = 0x4145_4749  # "AEGI": serialises appends on PostgreSQL


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    role: str
    action: str
    target: str
    event_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_broken: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def _digest(seq: int, at: datetime, fields: dict[str, str], prev_hash: str) -> str:
    payload = json.dumps(
        {"seq": seq, "at": at.isoformat(), "prev": prev_hash, **fields},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def detail_digest(detail: str) -> str:
    return hashlib.sha256(detail.encode()).hexdigest()


def _fields(entry: AuditEntry | AuditRecord, digest: str) -> dict[str, str]:
    return {
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "target": entry.target,
        "event_id": entry.event_id,
        "detail_sha256": digest,
    }


async def append(session: AsyncSession, record: AuditRecord, now: datetime) -> int:
    """Appends under a chain lock, so two writers never fork the chain."""
    if dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    last = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    # Microseconds are dropped: not every backend round-trips them identically.
    at = now.replace(microsecond=0)
    detail = json.dumps(record.detail, sort_keys=True, ensure_ascii=False)
    content_digest = detail_digest(detail)
    digest = _digest(seq, at, _fields(record, content_digest), prev_hash)
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
            detail_digest=content_digest,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    return seq


async def verify(session: AsyncSession) -> VerifyResult:
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    unaccounted: set[int] = set()  # tombstoned, not (yet) named by a purge record
    filed = (
        select(func.aggregate_strings(AuditRead.dossier_ref, ","))
        .where(AuditRead.seq == AuditEntry.seq)
        .scalar_subquery()
    )
    rows = await session.stream(select(AuditEntry, filed).order_by(AuditEntry.seq))
    async for entry, refs in rows:
        checked += 1
        if entry.seq != expected_seq:
            return VerifyResult(checked, entry.seq, f"expected entry {expected_seq}: rows missing")
        if entry.prev_hash != prev_hash:
            return VerifyResult(checked, entry.seq, "does not link to the entry before it")
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
        if _digest(entry.seq, at, _fields(entry, entry.detail_digest), prev_hash) != entry.hash:
            return VerifyResult(checked, entry.seq, "content does not match its hash")
        if entry.detail == TOMBSTONE:
            unaccounted.add(entry.seq)
        elif detail_digest(entry.detail) != entry.detail_digest:
            return VerifyResult(checked, entry.seq, "detail does not match its digest")
        else:
            unaccounted.difference_update(_tombstoned_by(entry.detail))
        if set(refs.split(",") if refs else ()) != _displayed(entry):
            return VerifyResult(checked, entry.seq, "read index does not match the entry")
        prev_hash, expected_seq = entry.hash, expected_seq + 1
    if unaccounted:
        first = min(unaccounted)
        return VerifyResult(checked, first, "detail removed without a purge record")
    return VerifyResult(checked, None)


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
    """Replaces the details of these entries by the tombstone; their digests stay, so the
    chain verifies once a later entry names them under `TOMBSTONED`. On PostgreSQL a trigger
    refuses any other change to `audit_log` and the runtime role may not UPDATE it, so this
    goes through the function migration 0018 made for it, which writes TOMBSTONE and only
    that (tests/test_pg_roles.py holds the two to the same text)."""
    if not seqs:
        return
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
