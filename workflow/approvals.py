"""The minister's office decides by reaction. Only approvers count, never the proposer (four
eyes), a quorum of distinct approvals approves, one rejection rejects, and each proposal is
decided exactly once however the reactions race."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from config import Role
from workflow.early_warning_model import WarningState
from workflow.early_warning_refs import warning_ref
from workflow.measures import Proposed
from workflow.model import (
    Choice,
    Measure,
    MeasureState,
    Proposal,
    ProposalAction,
    ProposalState,
    Vote,
)

if TYPE_CHECKING:
    from storage.early_warning import EarlyWarningStore
    from storage.measures import MeasureStore
    from workflow.core import Workflow
    from workflow.early_warning import WarningDecision
    from workflow.role_model import RequestDecision

_APPROVE = {"✅", "✔", "☑", "👍"}
_REJECT = {"❌", "✖", "👎"}
_SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}


def choice_of(key: str) -> Choice | None:
    """✅ ✔️ ☑️ 👍 (any skin tone) approve; ❌ ✖️ 👎 reject; anything else is no vote."""
    bare = "".join(
        c for c in unicodedata.normalize("NFC", key) if c != "\ufe0f" and c not in _SKIN_TONES
    )
    if bare in _APPROVE:
        return Choice.APPROVE
    if bare in _REJECT:
        return Choice.REJECT
    return None


class Ignored(enum.StrEnum):
    NOT_A_PROMPT = "not a prompt"
    NOT_A_VOTE = "not a vote emoji"
    OWN = "the bot's own reaction"
    NOT_APPROVER = "not an approver"
    PROPOSER = "four eyes: the proposer's vote never counts"
    DECIDED = "the proposal is decided already"
    NOT_POLICE = "only the police acknowledge orders"
    NOT_ADMIN = "not an admin"
    REQUESTER = "four eyes: the requester's confirmation never counts"
    GRANTEE = "four eyes: the grantee's confirmation never counts"


@dataclass(frozen=True)
class Decision:
    proposed: Proposed
    outcome: ProposalState
    by: str
    at: datetime
    rationale: str | None


@dataclass(frozen=True)
class ReactionResult:
    decision: Decision | None = None
    ignored: Ignored | None = None
    acknowledged: Measure | None = None
    warning: WarningDecision | None = None
    grant: RequestDecision | None = None


def tally(votes: Sequence[Vote], quorum: int) -> tuple[Choice, str] | None:
    """One rejection rejects (by its voter); a quorum of distinct approvers approves (by
    them all); otherwise undecided."""
    rejecters = [v.voter for v in votes if v.choice is Choice.REJECT]
    if rejecters:
        return Choice.REJECT, rejecters[0]
    approvers = list(dict.fromkeys(v.voter for v in votes if v.choice is Choice.APPROVE))
    if len(approvers) >= quorum:
        return Choice.APPROVE, ", ".join(approvers)
    return None


def prompt_ref(proposal: Proposal) -> str:
    return f"prompt:{proposal.ref}"


def order_ref(measure_id: int) -> str:
    return f"order:M-{measure_id}"


class ApprovalRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> MeasureStore:
        return self.wf.store.measures

    async def _proposal_of(self, event_id: str) -> tuple[str, Proposal | None, int | None]:
        """(kind, proposal, measure, warning or role request id) for a prompt, order,
        warning or role grant event; kind "" if none of them."""
        ref = await self.store.ref_of_event(event_id)
        if ref and ref.startswith("prompt:P-"):
            return "prompt", await self.store.proposal(int(ref.removeprefix("prompt:P-"))), None
        if ref and ref.startswith("order:M-"):
            return "order", None, int(ref.removeprefix("order:M-"))
        if ref and ref.startswith("warning:W-"):
            return "warning", None, int(ref.removeprefix("warning:W-"))
        if ref and ref.startswith("grant:R-"):
            return "grant", None, int(ref.removeprefix("grant:R-"))
        return "", None, None

    async def _ignore(self, actor: str, event_id: str, target: str, why: Ignored) -> ReactionResult:
        await self.wf.audit(actor, "vote.ignored", target, event_id, {"reason": why.value})
        return ReactionResult(ignored=why)

    async def react(
        self, actor: str, event_id: str, target_event_id: str, key: str, own: bool
    ) -> ReactionResult:
        kind, proposal, measure_id = await self._proposal_of(target_event_id)
        choice = choice_of(key)
        if not kind:
            return ReactionResult(ignored=Ignored.NOT_A_PROMPT)
        if choice is None:
            return ReactionResult(ignored=Ignored.NOT_A_VOTE)
        if kind == "warning":
            assert measure_id is not None
            vote = await self.wf.early_warning.react(actor, event_id, measure_id, choice, own)
            return ReactionResult(ignored=vote.ignored, warning=vote.decision)
        if kind == "grant":
            assert measure_id is not None
            confirmed = await self.wf.roles.react(actor, event_id, measure_id, choice, own)
            return ReactionResult(ignored=confirmed.ignored, grant=confirmed.decision)
        if kind == "order":
            assert measure_id is not None
            if own or choice is not Choice.APPROVE:
                return ReactionResult(ignored=Ignored.OWN if own else Ignored.NOT_A_VOTE)
            if Role.POLICE not in await self.wf.roles_of(actor):
                return await self._ignore(actor, event_id, f"M-{measure_id}", Ignored.NOT_POLICE)
            measure = await self.wf.measures.require(measure_id)
            if measure.acknowledged_by or not measure.state.in_force:
                return ReactionResult()
            return ReactionResult(
                acknowledged=await self.wf.measures.acknowledge(actor, event_id, measure_id)
            )
        assert proposal is not None
        if own:
            return await self._ignore(actor, event_id, proposal.ref, Ignored.OWN)
        proposal = await self.store.lock_proposal(proposal.id)
        assert proposal is not None
        if proposal.state is not ProposalState.PENDING:
            return await self._ignore(actor, event_id, proposal.ref, Ignored.DECIDED)
        if Role.APPROVER not in await self.wf.roles_of(actor):
            return await self._ignore(actor, event_id, proposal.ref, Ignored.NOT_APPROVER)
        if actor == proposal.proposer:
            return await self._ignore(actor, event_id, proposal.ref, Ignored.PROPOSER)
        if not await self.store.add_vote(proposal.id, actor, choice, event_id, self.wf.now):
            return ReactionResult()
        await self.wf.audit(actor, f"vote.{choice}", proposal.ref, event_id, {})
        return ReactionResult(decision=await self.decide(proposal.id))

    async def unreact(self, actor: str, event_id: str, reaction_event_id: str) -> None:
        """A redacted reaction withdraws its vote, but only while the proposal is open."""
        if await self.wf.early_warning.unreact(actor, event_id, reaction_event_id):
            return
        vote_of = await self.store.vote_proposal(reaction_event_id)
        if vote_of is None:
            return
        proposal = await self.store.lock_proposal(vote_of)
        if proposal is None or proposal.state is not ProposalState.PENDING:
            return
        await self.store.withdraw_vote(reaction_event_id, self.wf.now)
        await self.wf.audit(actor, "vote.withdrawn", proposal.ref, event_id, {})

    async def open_prompts(self) -> list[tuple[str, str, str]]:
        """(prompt ref, room, prompt event) of every pending proposal or sector warning whose
        prompt is out."""
        refs = [prompt_ref(p) for p in await self.store.pending()]
        refs += [warning_ref(w.id) for w in await self.wf.early_warning.pending()]
        found = []
        for ref in refs:
            sent = await self.store.event_of_ref(ref)
            if sent is not None:
                found.append((ref, *sent))
        return found

    async def forget_missing(self, ref: str, present: set[str]) -> None:
        """Withdraws votes whose reaction no longer exists (redacted while nobody watched),
        on a proposal or a sector warning that is still open."""
        votes: MeasureStore | EarlyWarningStore
        if ref.startswith("warning:W-"):
            votes = self.wf.store.early_warning
            warning = await votes.warning(int(ref.removeprefix("warning:W-")), lock=True)
            if warning is None or warning.state is not WarningState.PENDING:
                return
            owner, name = warning.id, warning.ref
        else:
            votes = self.store
            proposal = await votes.lock_proposal(int(ref.removeprefix("prompt:P-")))
            if proposal is None or proposal.state is not ProposalState.PENDING:
                return
            owner, name = proposal.id, proposal.ref
        for vote in await votes.votes(owner):
            if vote.reaction_event_id not in present:
                await votes.withdraw_vote(vote.reaction_event_id, self.wf.now)
                await self.wf.audit(vote.voter, "vote.withdrawn", name, "", {"seen": "reconcile"})

    async def rationale(
        self, actor: str, event_id: str, thread_root: str, text: str
    ) -> Proposal | None:
        """An approver's thread reply on a prompt; the first one is kept with the decision."""
        kind, proposal, _ = await self._proposal_of(thread_root)
        if kind != "prompt" or proposal is None or not text.strip():
            return None
        if Role.APPROVER not in await self.wf.roles_of(actor):
            return None
        if not await self.store.set_rationale(proposal.id, text.strip(), actor):
            return None
        await self.wf.audit(actor, "proposal.rationale", proposal.ref, event_id, {})
        return proposal

    async def decide(self, proposal_id: int) -> Decision | None:
        outcome = tally(await self.store.votes(proposal_id), self.wf.policy.quorum)
        if outcome is None:
            return None
        choice, by = outcome
        state = ProposalState.APPROVED if choice is Choice.APPROVE else ProposalState.REJECTED
        return await self.close(proposal_id, state, by)

    async def close(self, proposal_id: int, outcome: ProposalState, by: str) -> Decision | None:
        """Applies a decision once; None if another decision got there first."""
        if not await self.store.close_proposal(proposal_id, outcome, by, self.wf.now):
            return None
        proposal = await self.wf.measures.require_proposal(proposal_id)
        await self._apply(proposal, outcome)
        measure = await self.wf.measures.require(proposal.measure_id)
        await self.wf.store.add_timeline(
            measure.dossier_ref,
            at=self.wf.now,
            actor=by,
            kind="decision",
            text=f"{proposal.ref} ({proposal.action} {measure.ref}) {outcome}",
            event_id="",
        )
        await self.wf.audit(
            by.split(",")[0],
            f"proposal.{outcome}",
            proposal.ref,
            "",
            {"by": by, "measure": measure.ref},
        )
        return Decision(
            await self.wf.measures.context(proposal), outcome, by, self.wf.now, proposal.rationale
        )

    async def _apply(self, proposal: Proposal, outcome: ProposalState) -> None:
        measure = await self.wf.measures.require(proposal.measure_id)
        fields: dict[str, object] = {"updated_at": self.wf.now}
        if proposal.action is ProposalAction.CREATE:
            if outcome is ProposalState.APPROVED:
                # An urgent measure may have reached its end date while provisional; its end
                # has fired, so putting it back in force would leave it active for good.
                if measure.state is not MeasureState.ENDED:
                    fields["state"] = MeasureState.ACTIVE.value
            elif measure.state is MeasureState.PROVISIONAL:
                # Protection in force is ended, never silently: operations is told.
                fields.update(state=MeasureState.ENDED.value, ends_at=self.wf.now)
            else:
                fields["state"] = (
                    MeasureState.EXPIRED
                    if outcome is ProposalState.EXPIRED
                    else MeasureState.REJECTED
                ).value
        elif outcome is ProposalState.APPROVED:
            changes = proposal.changes
            if proposal.action is ProposalAction.EXTEND:
                fields["ends_at"] = datetime.fromisoformat(changes["ends_at"])
            elif proposal.action is ProposalAction.LIMIT:
                fields["details"] = f"{measure.details} [limited: {changes['limit']}]"
            elif proposal.action is ProposalAction.MAINTAIN and "review_at" in changes:
                fields["review_at"] = datetime.fromisoformat(changes["review_at"])
            elif proposal.action is ProposalAction.END:
                fields.update(state=MeasureState.ENDED.value, ends_at=self.wf.now)
        await self.store.update(measure.id, fields)
