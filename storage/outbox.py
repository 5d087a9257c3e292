"""The outbox: messages committed with their cause, sent later by the sender task."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import DossierRow, MeasureRow, OutboxDossierRow, OutboxMessage, ProposalRow
from workflow.refs import DOSSIER_ID, normal_ref

# What a closed row keeps of its content: nothing (the column is not nullable).
DROPPED = "{}"
# The error of a row a purge withdrew: it named a purged dossier and was not sent yet.
PURGED = "purged"
# Measures and proposals stand for their dossier: "limit M-7: only at the school" names
# no dossier ID, yet carries that dossier's personal data.
_MEASURE_OR_PROPOSAL = re.compile(r"(?<![\w-])([MP])-(\d{1,9})(?![\w-])")


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
    names: Iterable[str] = (),
) -> None:
    """The row is filed under every dossier its content (or fallback) names, by ID or by one
    of its measures or proposals, and under `names` (what a file's bytes name): a purge
    finds it by that once the content is gone."""
    row = OutboxMessage(
        ref=ref,
        txn_id=txn_id,
        room_id=room_id,
        event_type=event_type,
        content=json.dumps(content, ensure_ascii=False),
        created_at=now,
        attempts=0,
        audience=None if audience is None else json.dumps(audience, ensure_ascii=False),
    )
    session.add(row)
    named = await dossiers_named(session, row.content, row.audience or "", *names)
    if named:
        await session.flush()
        session.add_all(OutboxDossierRow(message_id=row.id, dossier_ref=d) for d in named)


async def dossiers_named(session: AsyncSession, *texts: str) -> set[str]:
    """The dossier IDs in the texts, with the dossiers of the measures and proposals named."""
    text = "\n".join(texts)
    found = {ref for m in DOSSIER_ID.finditer(text) if (ref := normal_ref(m.group(0)))}
    ids: dict[str, set[int]] = {"M": set(), "P": set()}
    for match in _MEASURE_OR_PROPOSAL.finditer(text):
        ids[match.group(1)].add(int(match.group(2)))
    if ids["P"]:
        measures = await session.scalars(
            select(ProposalRow.measure_id).where(ProposalRow.id.in_(sorted(ids["P"])))
        )
        ids["M"].update(measures)
    if ids["M"]:
        refs = await session.scalars(
            select(DossierRow.ref)
            .join(MeasureRow, MeasureRow.dossier_id == DossierRow.id)
            .where(MeasureRow.id.in_(sorted(ids["M"])))
        )
        found.update(refs)
    return found


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
) -> bool:
    """`sent` is the content actually posted when it was not the row's (a brief form, a
    withheld answer): the row then keeps that, and the personal data it would have carried
    is gone from the database. The fallback is dropped either way, no longer needed.

    False if a purge withdrew the row while it was on its way: it keeps nothing but the
    event ID, and the caller redacts the event."""
    withdrawn = await session.scalar(
        select(OutboxMessage.error == PURGED).where(OutboxMessage.id == message_id)
    )
    values: dict[str, Any] = {"sent_event_id": event_id, "sent_at": now, "audience": None}
    if sent is not None and not withdrawn:
        values["content"] = json.dumps(sent, ensure_ascii=False)
    await session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(values)
    )
    return not withdrawn


async def drop_content(session: AsyncSession, closed_by: datetime) -> int:
    """Empties the rows closed (sent, withheld or failed) by `closed_by`: what they posted is
    on the homeserver, and a copy here would outlive every erasure. txn_id (de-duplication),
    ref, room and event ID (finding a prompt or an order again) stay. How many rows."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.sent_at.is_not(None),
            OutboxMessage.sent_at <= closed_by,
            OutboxMessage.content != DROPPED,
        )
        .values(content=DROPPED, audience=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SentMessage:
    room_id: str
    event_id: str
    event_type: str


async def about_dossier(session: AsyncSession, ref: str, now: datetime) -> list[SentMessage]:
    """For a purge: withdraws every unsent row naming the dossier, keeping nothing of it,
    and answers the events the homeserver accepted for the others, oldest first."""
    named = select(OutboxDossierRow.message_id).where(OutboxDossierRow.dossier_ref == ref)
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(named), OutboxMessage.sent_at.is_(None))
        .values(content=DROPPED, audience=None, error=PURGED, sent_at=now)
    )
    rows = await session.execute(
        select(OutboxMessage.room_id, OutboxMessage.sent_event_id, OutboxMessage.event_type)
        .where(OutboxMessage.id.in_(named), OutboxMessage.sent_event_id.is_not(None))
        .order_by(OutboxMessage.id)
    )
    return [SentMessage(room, str(event), kind) for room, event, kind in rows if event]


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
