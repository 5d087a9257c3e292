"""Votes cast by reaction, for any kind of thing decided by reaction (proposals, sector
warnings): one row per reaction that counted, withdrawn by its voter's redaction while still
open; and the one notice each user gets for votes of theirs that do not count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dossiers import aware
from storage.runtime import dialect_insert
from storage.tables import VoteFeedbackRow
from workflow.model import Choice, Vote


class VoteTable:
    """`table` has voter, choice, reaction_event_id (unique), cast_at, withdrawn_at and a
    column named `owner` pointing at what is voted on."""

    def __init__(self, session: AsyncSession, table: Any, owner: str) -> None:
        self.session = session
        self.table = table
        self.owner = getattr(table, owner)
        self.owner_name = owner

    async def add(
        self, owner_id: int, voter: str, choice: Choice, reaction_event_id: str, at: datetime
    ) -> bool:
        """False if this reaction was counted already (a replay)."""
        stmt = (
            dialect_insert(self.session)(self.table)
            .values(
                **{self.owner_name: owner_id},
                voter=voter,
                choice=choice.value,
                reaction_event_id=reaction_event_id,
                cast_at=at,
            )
            .on_conflict_do_nothing(index_elements=["reaction_event_id"])
        )
        return bool((await self.session.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def current(self, owner_id: int) -> list[Vote]:
        rows = await self.session.scalars(
            select(self.table)
            .where(self.owner == owner_id, self.table.withdrawn_at.is_(None))
            .order_by(self.table.id)
        )
        return [
            Vote(r.voter, Choice(r.choice), r.reaction_event_id, aware(r.cast_at)) for r in rows
        ]

    async def ballot(self, reaction_event_id: str) -> tuple[int, str] | None:
        """(what it voted on, voter) of a reaction that counted, withdrawn or not."""
        row = (
            await self.session.execute(
                select(self.owner, self.table.voter).where(
                    self.table.reaction_event_id == reaction_event_id
                )
            )
        ).first()
        return (int(row[0]), str(row[1])) if row else None

    async def withdraw(self, reaction_event_id: str, at: datetime) -> int | None:
        """What the withdrawn vote was on, or None if the reaction was no standing vote."""
        owner = (
            await self.session.scalars(
                select(self.owner).where(
                    self.table.reaction_event_id == reaction_event_id,
                    self.table.withdrawn_at.is_(None),
                )
            )
        ).first()
        if owner is None:
            return None
        await self.session.execute(
            update(self.table)
            .where(self.table.reaction_event_id == reaction_event_id)
            .values(withdrawn_at=at)
        )
        return int(owner)


async def first_feedback(session: AsyncSession, ref: str, user_id: str, at: datetime) -> bool:
    """True the first time only for this named prompt and user: the one notice is owed."""
    stmt = (
        dialect_insert(session)(VoteFeedbackRow)
        .values(ref=ref, user_id=user_id, told_at=at)
        .on_conflict_do_nothing(index_elements=["ref", "user_id"])
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
