"""Time-driven steps: nudging approvers, expiring stale proposals and role grants waiting
for a second admin, warning before a measure ends and ending it. Each step is keyed in the
fired table, so it happens once per key even across restarts or with two processes running."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from config import Occasion
from workflow.approvals import Decision
from workflow.measures import Proposed
from workflow.model import Measure, MeasureState, ProposalState
from workflow.role_model import RequestDecision

if TYPE_CHECKING:
    from storage.measures import MeasureStore
    from workflow.core import Workflow


class Step(enum.StrEnum):
    NUDGE = "nudge"
    EXPIRE = "expire"
    END_WARNING = "end-warning"
    END = "end"
    GRANT_EXPIRE = "grant-expire"


@dataclass(frozen=True)
class Due:
    step: Step
    key: str
    # A proposal id for NUDGE/EXPIRE, a measure id for END_WARNING/END, a role request id
    # for GRANT_EXPIRE.
    target: int

    @property
    def name(self) -> str:
        """Unique per step: a warning and the end of one measure share a key."""
        return f"{self.step}/{self.key}"


@dataclass(frozen=True)
class Nudge:
    proposed: Proposed
    approvers: tuple[str, ...]
    waited_hours: int


@dataclass(frozen=True)
class Ending:
    measure: Measure
    warning: bool  # True: the advance warning; False: the measure has now ended


class ScheduleRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> MeasureStore:
        return self.wf.store.measures

    async def due(self) -> list[Due]:
        now, policy = self.wf.now, self.wf.policy
        found: list[Due] = []
        for proposal in await self.store.pending():
            age = now - proposal.created_at
            if age >= policy.expire_after:
                found.append(Due(Step.EXPIRE, proposal.ref, proposal.id))
            elif age >= policy.nudge_after:
                interval = int(age / policy.nudge_after)
                found.append(Due(Step.NUDGE, f"{proposal.ref}/{interval}", proposal.id))
        for request in await self.wf.roles.pending():
            if now - request.created_at >= policy.expire_after:
                found.append(Due(Step.GRANT_EXPIRE, request.ref, request.id))
        for measure in await self.store.listing(
            None, [MeasureState.ACTIVE, MeasureState.PROVISIONAL]
        ):
            if measure.ends_at is None:
                continue
            key = f"{measure.ref}/{measure.ends_at.isoformat()}"
            warned = await self.store.fired(Step.END_WARNING, key)
            if not warned and now >= measure.ends_at - policy.end_warning:
                found.append(Due(Step.END_WARNING, key, measure.id))
            elif warned and now >= measure.ends_at:
                found.append(Due(Step.END, key, measure.id))
        return [d for d in found if not await self.store.fired(d.step, d.key)]

    async def next_due(self) -> datetime | None:
        """The earliest step after now: a proposal's next nudge or its expiry, a role
        request's expiry, a measure's end warning or its end."""
        now, policy = self.wf.now, self.wf.policy
        times: list[datetime] = []
        for proposal in await self.store.pending():
            expiry = proposal.created_at + policy.expire_after
            intervals = int((now - proposal.created_at) / policy.nudge_after) + 1
            times += [expiry, min(expiry, proposal.created_at + intervals * policy.nudge_after)]
        times += [r.created_at + policy.expire_after for r in await self.wf.roles.pending()]
        for measure in await self.store.listing(
            None, [MeasureState.ACTIVE, MeasureState.PROVISIONAL]
        ):
            if measure.ends_at is not None:
                times += [measure.ends_at - policy.end_warning, measure.ends_at]
        return min((t for t in times if t > now), default=None)

    async def run(self, due: Due) -> Nudge | Decision | Ending | RequestDecision | None:
        """Performs one step, or nothing if it already happened (or no longer applies)."""
        if not await self.store.fire(due.step, due.key, self.wf.now):
            return None
        if due.step is Step.NUDGE:
            proposal = await self.wf.measures.require_proposal(due.target)
            if proposal.state is not ProposalState.PENDING:
                return None
            approvers = await self.wf.roles.to_mention(
                Occasion.APPROVAL, besides=(proposal.proposer,)
            )
            hours = int((self.wf.now - proposal.created_at).total_seconds() // 3600)
            return Nudge(await self.wf.measures.context(proposal), approvers, hours)
        if due.step is Step.EXPIRE:
            return await self.wf.approvals.close(due.target, ProposalState.EXPIRED, "expiry")
        if due.step is Step.GRANT_EXPIRE:
            return await self.wf.roles.expire(due.target)
        measure = await self.wf.measures.require(due.target)
        if not measure.state.in_force:
            return None
        if due.step is Step.END_WARNING:
            await self.wf.audit(
                "aegis", "measure.end-warning", measure.dossier_ref, "", {"measure": measure.ref}
            )
            return Ending(measure, warning=True)
        await self.store.update(
            measure.id, {"state": MeasureState.ENDED.value, "updated_at": self.wf.now}
        )
        await self.wf.store.add_timeline(
            measure.dossier_ref,
            at=self.wf.now,
            actor="aegis",
            kind="measure",
            text=f"{measure.ref} ended at its end date",
            event_id="",
        )
        await self.wf.audit(
            "aegis", "measure.ended", measure.dossier_ref, "", {"measure": measure.ref}
        )
        return Ending(await self.wf.measures.require(measure.id), warning=False)
