"""Anchoring the audit chain outside the database: its head (seq and hash) is posted as a
checkpoint in the audit room (`rooms.audit`, else coordination), through the outbox like
every other message. `aegis audit verify` reads the checkpoints back (bot/audit_cli.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.render import MESSAGE
from storage import audit, checkpoints, outbox
from storage.audit import Checkpoint
from storage.db import Database
from workflow.anchoring import Anchored, AnchorPolicy, checkpoint_due, next_checkpoint

log = logging.getLogger(__name__)

# The machine-readable part of a checkpoint message, read back by `aegis audit verify`.
CONTENT_KEY = "org.aegis.audit_checkpoint"
REF_PREFIX = "CK-"


def content(checkpoint: Checkpoint) -> dict[str, Any]:
    """A one-line notice people can read, with the fields verify parses."""
    return {
        "msgtype": "m.notice",
        "body": f"Audit checkpoint: entry {checkpoint.seq}, hash {checkpoint.hash}",
        CONTENT_KEY: {"seq": checkpoint.seq, "hash": checkpoint.hash},
    }


def parse(content: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint a message carries, if it is one."""
    fields = content.get(CONTENT_KEY)
    if not isinstance(fields, dict):
        return None
    seq, digest = fields.get("seq"), fields.get("hash")
    if not isinstance(seq, int) or not isinstance(digest, str) or len(digest) != 64:
        return None
    return Checkpoint(seq, digest)


@dataclass(frozen=True)
class Anchor:
    db: Database
    room_id: str
    policy: AnchorPolicy
    started: datetime
    """Counts as the last checkpoint's time until there is one."""

    async def tick(self, now: datetime, *, closing: bool = False) -> Checkpoint | None:
        """Queues a checkpoint of the head if one is due; the checkpoint it queued, if any.
        Asked on a snapshot first: most passes find nothing due and take no write lock."""
        async with self.db.snapshot() as session:
            if not await self._due(session, now, closing):
                return None
        async with self.db.transaction() as session:
            head = await self._due(session, now, closing)
            if head is None:
                return None
            await checkpoints.record(session, head, now)
            await outbox.enqueue(
                session,
                txn_id=f"audit-checkpoint/{head.seq}",
                room_id=self.room_id,
                event_type=MESSAGE,
                content=content(head),
                now=now,
                ref=f"{REF_PREFIX}{head.seq}",
            )
        log.info("audit checkpoint queued at entry %d", head.seq)
        return head

    async def _due(self, session: AsyncSession, now: datetime, closing: bool) -> Checkpoint | None:
        head = await audit.head(session)
        last = await checkpoints.last(session) or Anchored(0, self.started)
        if head is None or not checkpoint_due(self.policy, head.seq, last, now, closing=closing):
            return None
        return head

    async def next_due(self) -> datetime | None:
        async with self.db.snapshot() as session:
            head = await audit.head(session)
            last = await checkpoints.last(session) or Anchored(0, self.started)
        return None if head is None else next_checkpoint(self.policy, head.seq, last)
