"""Which chain heads were queued for anchoring in Matrix: the bot's memory of when the next
checkpoint is due. The anchors themselves live in Matrix, where verify reads them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import Checkpoint
from storage.tables import AuditCheckpoint
from workflow.anchoring import Anchored


async def last(session: AsyncSession) -> Anchored | None:
    row = (
        await session.execute(
            select(AuditCheckpoint.seq, AuditCheckpoint.at)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    at = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
    return Anchored(int(row[0]), at)


async def record(session: AsyncSession, checkpoint: Checkpoint, now: datetime) -> None:
    session.add(AuditCheckpoint(seq=checkpoint.seq, hash=checkpoint.hash, at=now))
