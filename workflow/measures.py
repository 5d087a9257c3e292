"""Measure rules: NCCN proposes, the minister's office decides, the police execute.

A new measure and every change to one in force (extend, limit, maintain, end) is a proposal
that needs approval; only an urgent proposal puts a measure in force before the decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from config import Role
from workflow.errors import NotFound, Refused
from workflow.model import (
    Assessment,
    Dossier,
    DossierStatus,
    Measure,
    MeasureState,
    MeasureType,
    Person,
    Proposal,
    ProposalAction,
    ProposalState,
)

if TYPE_CHECKING:
    from storage.measures import MeasureStore
    from workflow.core import Workflow
    from workflow.persons import PersonPick
    from workflow.privacy import Reader


@dataclass(frozen=True)
class Proposed:
    """What an approver needs on the prompt: dossier, threat, measure, proposer, reason."""

    proposal: Proposal
    measure: Measure
    dossier: Dossier
    latest: Assessment | None


@dataclass(frozen=True)
class Ordered:
    """An execution order the police acknowledged: what its edited message shows."""

    measure: Measure
    dossier: Dossier


@dataclass(frozen=True)
class MeasureHistory:
    measure: Measure
    proposals: list[Proposal]
    person: Person | None = None  # whom it protects; None: the dossier as a whole


class MeasureRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> MeasureStore:
        return self.wf.store.measures

    async def require(self, measure_id: int) -> Measure:
        measure = await self.store.get(measure_id)
        if measure is None:
            raise NotFound(f"no measure M-{measure_id}", f"M-{measure_id}")
        return measure

    async def require_proposal(self, proposal_id: int) -> Proposal:
        proposal = await self.store.proposal(proposal_id)
        if proposal is None:
            raise NotFound(f"no proposal P-{proposal_id}", f"P-{proposal_id}")
        return proposal

    async def context(self, proposal: Proposal) -> Proposed:
        found = await self.contexts([proposal])
        if not found:
            raise Refused(f"no measure M-{proposal.measure_id}")
        return found[0]

    async def contexts(self, proposals: Sequence[Proposal]) -> list[Proposed]:
        """What an approver needs, for a whole listing in four queries whatever its length. A
        measure or dossier can only be missing if deleted under us; its proposal is left out."""
        measures = await self.store.get_many([p.measure_id for p in proposals])
        refs = [m.dossier_ref for m in measures.values()]
        dossiers = await self.wf.store.dossiers(refs)
        latest = await self.wf.store.latest_assessments(refs)
        return [
            Proposed(p, m, dossiers[m.dossier_ref], latest.get(m.dossier_ref))
            for p in proposals
            if (m := measures.get(p.measure_id)) is not None and m.dossier_ref in dossiers
        ]

    async def _note(self, actor: str, event_id: str, ref: str, kind: str, text: str) -> None:
        await self.wf.store.add_timeline(
            ref, at=self.wf.now, actor=actor, kind=kind, text=text, event_id=event_id
        )

    async def propose(
        self,
        actor: str,
        event_id: str,
        room_id: str,
        dossier_ref: str,
        *,
        type: MeasureType,
        starts_at: datetime | None,
        ends_at: datetime | None,
        executor: str | None,
        urgent: bool,
        details: str,
        person: PersonPick | None = None,
    ) -> Proposed:
        """`person`: the person the measure protects; None: the dossier as a whole."""
        dossier = await self.wf.dossiers.require(dossier_ref)
        if dossier.status is DossierStatus.CLOSED:
            raise Refused(
                f"{dossier_ref} is closed; measures can only be proposed on an open dossier"
            )
        protected = await self.wf.persons.resolve(dossier_ref, person)
        if not details.strip():
            raise Refused("details: say what the measure is and why")
        if ends_at is not None and ends_at <= self.wf.now:
            raise Refused("end: is in the past")
        if starts_at and ends_at and ends_at <= starts_at:
            raise Refused("end: must be after start")
        if urgent and self.wf.policy.urgent_role not in await self.wf.roles_of(actor):
            raise Refused(f"urgent=yes needs role {self.wf.policy.urgent_role}")
        state = MeasureState.PROVISIONAL if urgent else MeasureState.PROPOSED
        measure = await self.store.insert(
            dossier_ref,
            {
                "type": type.value,
                "details": details.strip(),
                "executor": executor,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "state": state.value,
                "created_by": actor,
                "created_at": self.wf.now,
                "updated_at": self.wf.now,
                "person_id": protected.id if protected else None,
            },
        )
        proposal = await self._add_proposal(
            actor, room_id, measure, ProposalAction.CREATE, {}, details.strip(), urgent
        )
        note = f"{measure.ref} {type}" + (f" for {protected.ref}" if protected else "")
        note += f" proposed as {proposal.ref}"
        await self._note(
            actor,
            event_id,
            dossier_ref,
            "measure",
            note + (" (urgent: provisional)" if urgent else ""),
        )
        await self.wf.audit(
            actor,
            "measure.propose",
            dossier_ref,
            event_id,
            {"measure": measure.ref, "proposal": proposal.ref, "urgent": urgent}
            | ({"person": protected.ref} if protected else {}),
        )
        return await self.context(proposal)

    async def _add_proposal(
        self,
        actor: str,
        room_id: str,
        measure: Measure,
        action: ProposalAction,
        changes: dict[str, str],
        reason: str,
        urgent: bool = False,
    ) -> Proposal:
        return await self.store.add_proposal(
            {
                "measure_id": measure.id,
                "action": action.value,
                "changes": changes,
                "reason": reason,
                "proposer": actor,
                "origin_room": room_id,
                "urgent": urgent,
                "state": ProposalState.PENDING.value,
                "created_at": self.wf.now,
            }
        )

    async def change(
        self,
        actor: str,
        event_id: str,
        room_id: str,
        measure_id: int,
        action: ProposalAction,
        changes: dict[str, str],
        reason: str,
    ) -> Proposed:
        """Extend, limit, maintain or end a measure in force: a proposal like any other."""
        measure = await self.require(measure_id)
        if not measure.state.in_force:
            raise Refused(
                f"{measure.ref} is {measure.state}; only a measure in force can be changed"
            )
        dossier = await self.wf.dossiers.require(measure.dossier_ref)
        if dossier.status is DossierStatus.CLOSED:
            raise Refused(f"{dossier.ref} is closed; reopen it to change its measures")
        pending = [
            p for p in await self.store.proposals_of(measure_id) if p.state is ProposalState.PENDING
        ]
        if pending:
            p = pending[0]
            raise Refused(
                f"{measure.ref} already has {p.ref} ({p.action}, by {p.proposer}) pending; "
                f"the approvers decide it, or its proposer withdraws it (!proposal withdraw "
                f"{p.ref})"
            )
        if not reason.strip():
            raise Refused("reason: say why")
        if "ends_at" in changes:
            new_end = datetime.fromisoformat(changes["ends_at"])
            if new_end <= self.wf.now:
                raise Refused("end: is in the past")
            if action is ProposalAction.EXTEND and measure.ends_at and new_end <= measure.ends_at:
                raise Refused("end: an extension must end later than the current end")
        if "review_at" in changes and datetime.fromisoformat(changes["review_at"]) <= self.wf.now:
            raise Refused("review: is in the past")
        proposal = await self._add_proposal(
            actor, room_id, measure, action, changes, reason.strip()
        )
        await self._note(
            actor,
            event_id,
            measure.dossier_ref,
            "measure",
            f"{measure.ref}: {action} proposed as {proposal.ref}",
        )
        await self.wf.audit(
            actor,
            f"measure.{action}",
            measure.dossier_ref,
            event_id,
            {"measure": measure.ref, "proposal": proposal.ref},
        )
        return await self.context(proposal)

    async def withdraw(self, actor: str, event_id: str, proposal_id: int) -> Proposed:
        proposal = await self.require_proposal(proposal_id)
        if proposal.proposer != actor:
            await self.wf.refuse(
                actor, "proposal withdraw", proposal.ref, event_id, "not the proposer"
            )
            raise Refused(f"only the proposer ({proposal.proposer}) may withdraw {proposal.ref}")
        if proposal.state is not ProposalState.PENDING:
            raise Refused(f"{proposal.ref} is {proposal.state} already")
        await self.store.close_proposal(proposal_id, ProposalState.WITHDRAWN, actor, self.wf.now)
        measure = await self.require(proposal.measure_id)
        if proposal.action is ProposalAction.CREATE:
            await self.store.update(
                measure.id, {"state": MeasureState.WITHDRAWN.value, "updated_at": self.wf.now}
            )
        await self._note(
            actor,
            event_id,
            measure.dossier_ref,
            "decision",
            f"{proposal.ref} withdrawn by the proposer",
        )
        await self.wf.audit(
            actor, "proposal.withdraw", measure.dossier_ref, event_id, {"proposal": proposal.ref}
        )
        return await self.context(await self.require_proposal(proposal_id))

    async def acknowledge(self, actor: str, event_id: str, measure_id: int) -> Ordered:
        """The police confirm they execute the order."""
        measure = await self.require(measure_id)
        if Role.POLICE not in await self.wf.roles_of(actor):
            raise Refused("acknowledging an order needs role police")
        if not measure.state.in_force:
            raise Refused(f"{measure.ref} is {measure.state}; there is nothing to execute")
        if measure.acknowledged_by:
            raise Refused(f"{measure.ref} was acknowledged by {measure.acknowledged_by} already")
        await self.store.update(
            measure_id, {"acknowledged_by": actor, "acknowledged_at": self.wf.now}
        )
        await self._note(
            actor,
            event_id,
            measure.dossier_ref,
            "measure",
            f"{measure.ref}: execution acknowledged",
        )
        await self.wf.audit(
            actor, "measure.ack", measure.dossier_ref, event_id, {"measure": measure.ref}
        )
        return Ordered(
            await self.require(measure_id), await self.wf.dossiers.require(measure.dossier_ref)
        )

    async def listing(
        self,
        dossier_ref: str | None,
        states: list[MeasureState] | None,
        involving: str | None = None,
    ) -> list[Measure]:
        if dossier_ref is not None:
            await self.wf.dossiers.require(dossier_ref)
        return await self.store.listing(dossier_ref, states, involving=involving)

    async def history(self, measure_id: int, reader: Reader) -> MeasureHistory:
        measure = await self.require(measure_id)
        await self.wf.privacy.read(reader, measure.dossier_ref)
        dossier = await self.wf.dossiers.require(measure.dossier_ref)
        return MeasureHistory(
            measure, await self.store.proposals_of(measure_id), dossier.person(measure.person_id)
        )

    async def pending(self, reader: Reader) -> list[Proposed]:
        """The approvals listing: a read of each listed proposal's dossier."""
        listed = await self.contexts(await self.store.pending())
        await self.wf.privacy.read_many(reader, [p.dossier.ref for p in listed])
        return listed
