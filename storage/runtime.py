"""Queries behind exactly-once processing: the sync cursor, handled events and join points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import CommandEventRow, HandledEvent, RoomJoin, SyncState

SYNC_TOKEN = "sync_token"


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def dialect_insert(session: AsyncSession) -> Callable[[Any], Any]:
    """The dialect's INSERT, for ON CONFLICT clauses on both backends."""
    return pg_insert if dialect(session) == "postgresql" else sqlite_insert


async def get_cursor(session: AsyncSession, name: str = SYNC_TOKEN) -> str | None:
    row = await session.get(SyncState, name)
    return row.value if row else None


async def set_cursor(session: AsyncSession, value: str, name: str = SYNC_TOKEN) -> None:
    stmt = dialect_insert(session)(SyncState).values(name=name, value=value)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"value": value})
    )


async def claim_event(session: AsyncSession, event_id: str, room_id: str, now: datetime) -> bool:
    """True if this event was not handled before; the claim commits with the event's effects."""
    stmt = (
        dialect_insert(session)(HandledEvent)
        .values(event_id=event_id, room_id=room_id, handled_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Three bound parameters a row; both drivers allow at least 32,766 a statement.
MARKS_PER_STATEMENT = 1000


async def mark_seen(session: AsyncSession, seen: list[tuple[str, str]], now: datetime) -> None:
    """Events that asked for nothing, as (event ID, room ID): marked handled in one statement."""
    rows = [{"event_id": e, "room_id": r, "handled_at": now} for e, r in dict(seen).items()]
    for start in range(0, len(rows), MARKS_PER_STATEMENT):
        stmt = dialect_insert(session)(HandledEvent).values(
            rows[start : start + MARKS_PER_STATEMENT]
        )
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["event_id"]))


async def handled_among(session: AsyncSession, event_ids: list[str]) -> set[str]:
    if not event_ids:
        return set()
    rows = await session.scalars(
        select(HandledEvent.event_id).where(HandledEvent.event_id.in_(event_ids))
    )
    return set(rows)


async def forget_handled_before(session: AsyncSession, cutoff: datetime) -> None:
    """Old marks only guard against replays that can no longer happen; nobody edits a
    command that old either."""
    await session.execute(delete(HandledEvent).where(HandledEvent.handled_at < cutoff))
    await session.execute(delete(CommandEventRow).where(CommandEventRow.handled_at < cutoff))


# What an edit of a command may do: run it (it failed to parse), or be told it was done or
# answered already.
OPEN, DONE, ANSWERED = "open", "done", "answered"


@dataclass(frozen=True)
class CommandEvent:
    """A command the bot answered: who sent it where, and what an edit of it may do."""

    event_id: str
    room_id: str
    sender: str
    state: str
    thread_root: str | None


async def record_command(session: AsyncSession, command: CommandEvent, now: datetime) -> None:
    """Written with the command's effects, so its state is exactly what took effect."""
    session.add(
        CommandEventRow(
            event_id=command.event_id,
            room_id=command.room_id,
            sender=command.sender,
            state=command.state,
            thread_root=command.thread_root,
            handled_at=now,
        )
    )
    await session.flush()


async def command_event(session: AsyncSession, event_id: str) -> CommandEvent | None:
    """Read under a row lock (PostgreSQL): two edits of one command handled at once (two
    processes) run it once; SQLite transactions are serial already."""
    row = (
        await session.scalars(
            select(CommandEventRow).where(CommandEventRow.event_id == event_id).with_for_update()
        )
    ).first()
    if row is None:
        return None
    return CommandEvent(row.event_id, row.room_id, row.sender, row.state, row.thread_root)


async def settle_command(session: AsyncSession, event_id: str, state: str) -> None:
    await session.execute(
        update(CommandEventRow).where(CommandEventRow.event_id == event_id).values(state=state)
    )


async def join_points(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(RoomJoin.room_id, RoomJoin.joined_ts))
    return {room_id: ts for room_id, ts in rows.all()}


async def record_join(session: AsyncSession, room_id: str, joined_ts: int) -> None:
    """The first join point wins: a later re-sync of the membership must not move it back."""
    stmt = (
        dialect_insert(session)(RoomJoin)
        .values(room_id=room_id, joined_ts=joined_ts)
        .on_conflict_do_nothing(index_elements=["room_id"])
    )
    await session.execute(stmt)
