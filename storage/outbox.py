"""The outbox: messages committed with their cause, sent later by the sender task."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import OutboxMessage


@dataclass(frozen=True)
class PendingMessage:
    id: int
    txn_id: str
    room_id: str
    event_type: str
    content: dict[str, Any]
    # For a row carrying personal data, what the sender checks just before sending and
    # what it falls back to (bot/audience.py): {"carries": data kind, and either "reply_to"
    # and "actor" (the command and its sender) for an answer to withhold, or "brief", the
    # content of an automated post's brief form, or neither for a file; "file" marks an
    # answer's file, withdrawn without a notice of its own}.
    audience: dict[str, Any] | None = None


async def enqueue(
    session: AsyncSession,
    *,
    txn_id: str,
    room_id: str,
    event_type: str,
    content: dict[str, Any],
    now: datetime,
    ref: str | None = None,
    audience: dict[str, Any] | None = None,
) -> None:
    session.add(
        OutboxMessage(
            ref=ref,
            txn_id=txn_id,
            room_id=room_id,
            event_type=event_type,
            content=json.dumps(content, ensure_ascii=False),
            created_at=now,
            attempts=0,
            audience=None if audience is None else json.dumps(audience, ensure_ascii=False),
        )
    )


async def pending(session: AsyncSession, limit: int = 50) -> list[PendingMessage]:
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return [
        PendingMessage(
            r.id,
            r.txn_id,
            r.room_id,
            r.event_type,
            json.loads(r.content),
            None if r.audience is None else json.loads(r.audience),
        )
        for r in rows
    ]


async def mark_sent(
    session: AsyncSession,
    message_id: int,
    event_id: str,
    now: datetime,
    sent: dict[str, Any] | None = None,
) -> None:
    """`sent` is the content actually posted when it was not the row's (a brief form, a
    withheld answer): the row then keeps that, and the personal data it would have carried
    is gone from the database. The fallback is dropped either way, no longer needed."""
    values: dict[str, Any] = {"sent_event_id": event_id, "sent_at": now, "audience": None}
    if sent is not None:
        values["content"] = json.dumps(sent, ensure_ascii=False)
    await session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(values)
    )


async def withdraw(session: AsyncSession, message_id: int, why: str, now: datetime) -> None:
    """Closes a row that is not to be posted at all (a file, or a later part of an agenda,
    for an audience that may not read it), keeping nothing of what it would have carried."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(content="{}", audience=None, error=why, sent_at=now)
    )


async def count_attempt(session: AsyncSession, message_id: int) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(attempts=OutboxMessage.attempts + 1)
    )


async def mark_failed(session: AsyncSession, message_id: int, error: str, now: datetime) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(error=error[:1000], sent_at=now)
    )


async def event_of_ref(session: AsyncSession, ref: str) -> tuple[str, str] | None:
    """(room, event ID) of the named message once the homeserver accepted it."""
    row = (
        await session.execute(
            select(OutboxMessage.room_id, OutboxMessage.sent_event_id).where(
                OutboxMessage.ref == ref, OutboxMessage.sent_event_id.is_not(None)
            )
        )
    ).first()
    return (row[0], str(row[1])) if row else None


async def sent_events(session: AsyncSession, refs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Ref -> (room, event ID) of those named messages the homeserver accepted; asked in
    batches, so a long agenda stays under the databases' limits on bound parameters."""
    wanted, found = sorted(set(refs)), {}
    for start in range(0, len(wanted), 500):
        rows = await session.execute(
            select(OutboxMessage.ref, OutboxMessage.room_id, OutboxMessage.sent_event_id).where(
                OutboxMessage.ref.in_(wanted[start : start + 500]),
                OutboxMessage.sent_event_id.is_not(None),
            )
        )
        found.update({str(ref): (room, str(event)) for ref, room, event in rows})
    return found


async def ref_of_event(session: AsyncSession, event_id: str) -> str | None:
    """Which named message (a prompt, an order) a Matrix event is."""
    return (
        await session.scalars(
            select(OutboxMessage.ref).where(
                OutboxMessage.sent_event_id == event_id, OutboxMessage.ref.is_not(None)
            )
        )
    ).first()


async def named(session: AsyncSession, event_id: str) -> tuple[str, str] | None:
    """(name, room) of the named message a Matrix event is: where reactions on it count."""
    row = (
        await session.execute(
            select(OutboxMessage.ref, OutboxMessage.room_id).where(
                OutboxMessage.sent_event_id == event_id, OutboxMessage.ref.is_not(None)
            )
        )
    ).first()
    return (str(row[0]), str(row[1])) if row else None
