"""Queries for measures, proposals, votes and the scheduler's fired keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import outbox
from storage.dossiers import aware, utc_or_none
from storage.runtime import dialect_insert
from storage.tables import DossierRow, FiredRow, MeasureRow, ProposalRow, VoteRow
from storage.votes import VoteTable, first_feedback
from workflow.model import (
    Choice,
    Measure,
    MeasureState,
    MeasureType,
    Proposal,
    ProposalAction,
    ProposalState,
    Vote,
)


def measure_record(row: MeasureRow, dossier_ref: str) -> Measure:
    return Measure(
        id=row.id,
        dossier_ref=dossier_ref,
        type=MeasureType(row.type),
        details=row.details,
        executor=row.executor,
        starts_at=utc_or_none(row.starts_at),
        ends_at=utc_or_none(row.ends_at),
        review_at=utc_or_none(row.review_at),
        state=MeasureState(row.state),
        created_by=row.created_by,
        created_at=aware(row.created_at),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=utc_or_none(row.acknowledged_at),
        person_id=row.person_id,
    )


def proposal_record(row: ProposalRow) -> Proposal:
    return Proposal(
        id=row.id,
        measure_id=row.measure_id,
        action=ProposalAction(row.action),
        changes=json.loads(row.changes),
        reason=row.reason,
        proposer=row.proposer,
        origin_room=row.origin_room,
        urgent=row.urgent,
        state=ProposalState(row.state),
        created_at=aware(row.created_at),
        decided_at=utc_or_none(row.decided_at),
        decided_by=row.decided_by,
        rationale=row.rationale,
        rationale_by=row.rationale_by,
    )


class MeasureStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.votes_table = VoteTable(session, VoteRow, "proposal_id")

    async def insert(self, dossier_ref: str, fields: dict[str, Any]) -> Measure:
        dossier_id = (
            await self.session.execute(select(DossierRow.id).where(DossierRow.ref == dossier_ref))
        ).scalar_one()
        row = MeasureRow(dossier_id=dossier_id, **fields)
        self.session.add(row)
        await self.session.flush()
        return measure_record(row, dossier_ref)

    def _measures(self) -> Select[MeasureRow, str]:
        return select(MeasureRow, DossierRow.ref).join(
            DossierRow, MeasureRow.dossier_id == DossierRow.id
        )

    async def get(self, measure_id: int) -> Measure | None:
        row = (
            await self.session.execute(self._measures().where(MeasureRow.id == measure_id))
        ).first()
        return measure_record(row[0], row[1]) if row else None

    async def get_many(self, measure_ids: Sequence[int]) -> dict[int, Measure]:
        rows = await self.session.execute(
            self._measures().where(MeasureRow.id.in_(set(measure_ids)))
        )
        return {m.id: measure_record(m, ref) for m, ref in rows.all()}

    async def update(self, measure_id: int, fields: dict[str, Any]) -> None:
        await self.session.execute(
            update(MeasureRow).where(MeasureRow.id == measure_id).values(**fields)
        )

    async def listing(
        self,
        dossier_ref: str | None,
        states: Sequence[MeasureState] | None,
        limit: int | None = 200,
        involving: str | None = None,
    ) -> list[Measure]:
        """`involving`: only measures the user proposed (or proposed a change to), voted
        on, executes or acknowledged."""
        query = self._measures()
        if dossier_ref is not None:
            query = query.where(DossierRow.ref == dossier_ref)
        if involving is not None:
            proposed = select(ProposalRow.measure_id).where(ProposalRow.proposer == involving)
            voted = (
                select(ProposalRow.measure_id)
                .join(VoteRow, VoteRow.proposal_id == ProposalRow.id)
                .where(VoteRow.voter == involving)
            )
            query = query.where(
                or_(
                    MeasureRow.created_by == involving,
                    MeasureRow.executor == involving,
                    MeasureRow.acknowledged_by == involving,
                    MeasureRow.id.in_(proposed),
                    MeasureRow.id.in_(voted),
                )
            )
        if states is not None:
            query = query.where(MeasureRow.state.in_([s.value for s in states]))
        rows = await self.session.execute(query.order_by(MeasureRow.id.desc()).limit(limit))
        return [measure_record(m, ref) for m, ref in rows.all()]

    async def add_proposal(self, fields: dict[str, Any]) -> Proposal:
        row = ProposalRow(**{**fields, "changes": json.dumps(fields["changes"])})
        self.session.add(row)
        await self.session.flush()
        return proposal_record(row)

    async def proposal(self, proposal_id: int) -> Proposal | None:
        row = await self.session.get(ProposalRow, proposal_id)
        return proposal_record(row) if row else None

    async def lock_proposal(self, proposal_id: int) -> Proposal | None:
        """The proposal, re-read under a row lock (PostgreSQL; SQLite transactions are
        serial already): votes on one proposal are counted one transaction at a time, so two
        votes that together reach the quorum cannot each miss the other."""
        row = (
            await self.session.scalars(
                select(ProposalRow)
                .where(ProposalRow.id == proposal_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).first()
        return proposal_record(row) if row else None

    async def proposals_of(self, measure_id: int) -> list[Proposal]:
        rows = await self.session.scalars(
            select(ProposalRow).where(ProposalRow.measure_id == measure_id).order_by(ProposalRow.id)
        )
        return [proposal_record(r) for r in rows]

    async def pending(self) -> list[Proposal]:
        rows = await self.session.scalars(
            select(ProposalRow)
            .where(ProposalRow.state == ProposalState.PENDING.value)
            .order_by(ProposalRow.id)
        )
        return [proposal_record(r) for r in rows]

    async def close_proposal(
        self, proposal_id: int, state: ProposalState, by: str | None, at: datetime
    ) -> bool:
        """Pending → decided, exactly once: of two racing decisions only one changes a row."""
        result = await self.session.execute(
            update(ProposalRow)
            .where(ProposalRow.id == proposal_id, ProposalRow.state == ProposalState.PENDING.value)
            .values(state=state.value, decided_by=by, decided_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_rationale(self, proposal_id: int, text: str, by: str) -> bool:
        """Only the first rationale is kept."""
        result = await self.session.execute(
            update(ProposalRow)
            .where(ProposalRow.id == proposal_id, ProposalRow.rationale.is_(None))
            .values(rationale=text, rationale_by=by)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_vote(
        self, proposal_id: int, voter: str, choice: Choice, reaction_event_id: str, at: datetime
    ) -> bool:
        return await self.votes_table.add(proposal_id, voter, choice, reaction_event_id, at)

    async def withdraw_vote(self, reaction_event_id: str, at: datetime) -> int | None:
        """The proposal whose vote was withdrawn, or None if the reaction was no vote."""
        return await self.votes_table.withdraw(reaction_event_id, at)

    async def vote_proposal(self, reaction_event_id: str) -> tuple[int, str] | None:
        """(proposal, voter) of a reaction that counted as a vote on a proposal."""
        return await self.votes_table.ballot(reaction_event_id)

    async def votes(self, proposal_id: int) -> list[Vote]:
        return await self.votes_table.current(proposal_id)

    async def fire(self, kind: str, key: str, at: datetime) -> bool:
        """True the first time only: the scheduler's guard against doing anything twice."""
        stmt = (
            dialect_insert(self.session)(FiredRow)
            .values(kind=kind, key=key, fired_at=at)
            .on_conflict_do_nothing(index_elements=["kind", "key"])
        )
        return bool((await self.session.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def fired(self, kind: str, key: str) -> bool:
        return await self.fired_at(kind, key) is not None

    async def fired_at(self, kind: str, key: str) -> datetime | None:
        """When the key was first fired: a meeting's first sighting dates its configuration."""
        row = await self.session.get(FiredRow, (kind, key))
        return None if row is None else aware(row.fired_at)

    async def ref_of_event(self, event_id: str) -> str | None:
        return await outbox.ref_of_event(self.session, event_id)

    async def event_of_ref(self, ref: str) -> tuple[str, str] | None:
        return await outbox.event_of_ref(self.session, ref)

    async def named_event(self, event_id: str) -> tuple[str, str] | None:
        return await outbox.named(self.session, event_id)

    async def first_feedback(self, ref: str, user_id: str, at: datetime) -> bool:
        return await first_feedback(self.session, ref, user_id, at)
