"""The audit trail: append-only and hash-chained, so an altered or removed row is detectable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.runtime import dialect
from storage.tables import AuditEntry

GENESIS = "0" * 64
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


def _fields(entry: AuditEntry | AuditRecord, detail: str) -> dict[str, str]:
    return {
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "target": entry.target,
        "event_id": entry.event_id,
        "detail": detail,
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
    digest = _digest(seq, at, _fields(record, detail), prev_hash)
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
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    return seq


async def verify(session: AsyncSession) -> VerifyResult:
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    rows = await session.stream_scalars(select(AuditEntry).order_by(AuditEntry.seq))
    async for entry in rows:
        checked += 1
        if entry.seq != expected_seq:
            return VerifyResult(checked, entry.seq, f"expected entry {expected_seq}: rows missing")
        if entry.prev_hash != prev_hash:
            return VerifyResult(checked, entry.seq, "does not link to the entry before it")
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
        if _digest(entry.seq, at, _fields(entry, entry.detail), prev_hash) != entry.hash:
            return VerifyResult(checked, entry.seq, "content does not match its hash")
        prev_hash, expected_seq = entry.hash, expected_seq + 1
    return VerifyResult(checked, None)


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


async def entries_for(session: AsyncSession, target: str) -> list[AuditRecordRow]:
    """A dossier's own trail, for exports: everything recorded with it as the target."""
    rows = await session.scalars(
        select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.seq)
    )
    return [
        AuditRecordRow(
            r.seq,
            r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
            r.actor,
            r.role,
            r.action,
            r.target,
            r.event_id,
            json.loads(r.detail),
        )
        for r in rows
    ]
