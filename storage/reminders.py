"""Queries for personal reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dossiers import aware, utc_or_none
from storage.tables import ReminderRow
from workflow.reminder_model import PersonalReminder, ReminderState, Trigger


def reminder_record(row: ReminderRow) -> PersonalReminder:
    return PersonalReminder(
        id=row.id,
        created_by=row.created_by,
        target=row.target,
        room_id=row.room_id,
        text=row.text,
        trigger=Trigger(row.trigger),
        due_at=utc_or_none(row.due_at),
        rrule=row.rrule,
        proposal_id=row.proposal_id,
        dossier_ref=row.dossier_ref,
        offset=None if row.offset_minutes is None else timedelta(minutes=row.offset_minutes),
        state=ReminderState(row.state),
        created_at=aware(row.created_at),
        last_fired_at=utc_or_none(row.last_fired_at),
    )


def _utc(fields: dict[str, Any]) -> dict[str, Any]:
    """Every stored time is UTC: SQLite keeps no offset, so comparisons need one zone."""
    return {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in fields.items()}


class ReminderStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, fields: dict[str, Any]) -> PersonalReminder:
        row = ReminderRow(**_utc(fields))
        self.session.add(row)
        await self.session.flush()
        return reminder_record(row)

    async def get(self, reminder_id: int) -> PersonalReminder | None:
        row = await self.session.get(ReminderRow, reminder_id)
        return reminder_record(row) if row else None

    async def pending(self) -> list[PersonalReminder]:
        rows = await self.session.scalars(
            select(ReminderRow)
            .where(ReminderRow.state == ReminderState.PENDING.value)
            .order_by(ReminderRow.id)
        )
        return [reminder_record(row) for row in rows]

    async def pending_count(self, created_by: str) -> int:
        query = select(func.count(ReminderRow.id)).where(
            ReminderRow.state == ReminderState.PENDING.value, ReminderRow.created_by == created_by
        )
        return int(await self.session.scalar(query) or 0)

    async def of(self, user: str, room_id: str) -> list[PersonalReminder]:
        """The pending reminders set in a room by or for a user."""
        rows = await self.session.scalars(
            select(ReminderRow)
            .where(
                ReminderRow.state == ReminderState.PENDING.value,
                ReminderRow.room_id == room_id,
                or_(ReminderRow.created_by == user, ReminderRow.target == user),
            )
            .order_by(ReminderRow.id)
        )
        return [reminder_record(row) for row in rows]

    async def update(self, reminder_id: int, fields: dict[str, Any]) -> None:
        await self.session.execute(
            update(ReminderRow).where(ReminderRow.id == reminder_id).values(**_utc(fields))
        )

    async def count_for_dossier(self, ref: str) -> int:
        query = select(func.count(ReminderRow.id)).where(ReminderRow.dossier_ref == ref)
        return int(await self.session.scalar(query) or 0)

    async def delete_for_dossier(self, ref: str) -> None:
        """A purge removes the reminders about a dossier, done ones too: their text is
        the dossier's personal data as much as its notes are."""
        await self.session.execute(delete(ReminderRow).where(ReminderRow.dossier_ref == ref))
