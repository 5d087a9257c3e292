"""The minister's office decides by reaction. Only approvers count, never the proposer (four
eyes), a quorum of distinct approvals approves, one rejection rejects, and each proposal is
decided exactly once however the reactions race.

A vote counts only in the prompt's own room, and an encrypted one only if its relation in
clear (what the homeserver and every other client go by) is the one inside the ciphertext;
only the voter's own redaction withdraws it. A ✅ or ❌ that does not count is audited, and
its sender is told once per prompt in the prompt's thread."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from config import Role
from workflow.early_warning_model import WarningState
from workflow.early_warning_refs import warning_ref
from workflow.measures import Ordered, Proposed
from workflow.model import (
    Choice,
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
    ELSEWHERE = "not in the prompt's room"
    SEALED = "the relation in clear differs from the encrypted one"
    NOT_APPROVER = "not an approver"
    PROPOSER = "four eyes: the proposer's vote never counts"
    DECIDED = "the proposal is decided already"
    NOT_POLICE = "only the police acknowledge orders"
    NOT_ADMIN = "not an admin"
    REQUESTER = "four eyes: the requester's confirmation never counts"
    GRANTEE = "four eyes: the grantee's confirmation never counts"


# Votes that do not count for a reason their sender can act on, or should know: told once.
TOLD = frozenset(
    {
        Ignored.NOT_APPROVER,
        Ignored.PROPOSER,
        Ignored.DECIDED,
        Ignored.NOT_ADMIN,
        Ignored.REQUESTER,
        Ignored.GRANTEE,
    }
)


@dataclass(frozen=True)
class Feedback:
    """A ✅ or ❌ that does not count, told to its sender in the thread of the prompt `ref`
    (a named message, e.g. "prompt:P-3") in `room_id`. IDs only: the thread may be read by
    people not cleared for the dossier behind the prompt."""

    ref: str
    room_id: str
    voter: str
    choice: Choice
    why: Ignored

    @property
    def name(self) -> str:
        return _name(self.ref)


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
    acknowledged: Ordered | None = None
    warning: WarningDecision | None = None
    grant: RequestDecision | None = None

    feedback: Feedback | None = None


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


def _name(ref: str) -> str:
    """The audit target of a named message: "prompt:P-3" → "P-3"."""
    return ref.split(":", 1)[1]


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

    async def _ignore(
        self, actor: str, event_id: str, target: str, why: Ignored, **detail: str
    ) -> ReactionResult:
        await self.wf.audit(
            actor, "vote.ignored", target, event_id, {"reason": why.value, **detail}
        )
        return ReactionResult(ignored=why)

    async def react(
        self,
        actor: str,
        event_id: str,
        target_event_id: str,
        key: str,
        own: bool,
        *,
        room_id: str,
        relation_matches: bool = True,
    ) -> ReactionResult:
        """A reaction seen in `room_id` on a prompt, order or sector warning. The bot's own
        pre-set ✅ and ❌ are no votes and leave no trace. A reaction from another room (an
        encrypted one can name any event ID inside its ciphertext), or whose encrypted relation
        is not the one in clear, never counts and is audited. A vote that does not count for
        its sender's role, four eyes or lateness earns one notice per user and prompt."""
        kind, proposal, measure_id = await self._proposal_of(target_event_id)
        choice = choice_of(key)
        if not kind:
            return ReactionResult(ignored=Ignored.NOT_A_PROMPT)
        if choice is None:
            return ReactionResult(ignored=Ignored.NOT_A_VOTE)
        if own:
            return ReactionResult(ignored=Ignored.OWN)
        named = await self.store.named_event(target_event_id)
        assert named is not None  # _proposal_of found it by the same name
        ref, prompt_room = named
        if room_id != prompt_room:
            return await self._ignore(actor, event_id, _name(ref), Ignored.ELSEWHERE, room=room_id)
        if not relation_matches:
            return await self._ignore(actor, event_id, _name(ref), Ignored.SEALED)
        result = await self._count(kind, proposal, measure_id, actor, event_id, choice)
        if result.ignored in TOLD and await self.store.first_feedback(ref, actor, self.wf.now):
            told = Feedback(ref, prompt_room, actor, choice, result.ignored)
            return replace(result, feedback=told)
        return result

    async def _count(
        self,
        kind: str,
        proposal: Proposal | None,
        measure_id: int | None,
        actor: str,
        event_id: str,
        choice: Choice,
    ) -> ReactionResult:
        """A reaction in the right place, by someone else than the bot: does it count?"""
        if kind == "warning":
            assert measure_id is not None
            vote = await self.wf.early_warning.react(actor, event_id, measure_id, choice)
            return ReactionResult(ignored=vote.ignored, warning=vote.decision)
        if kind == "grant":
            assert measure_id is not None
            confirmed = await self.wf.roles.react(actor, event_id, measure_id, choice)
            return ReactionResult(ignored=confirmed.ignored, grant=confirmed.decision)
        if kind == "order":
            assert measure_id is not None
            if choice is not Choice.APPROVE:
                return ReactionResult(ignored=Ignored.NOT_A_VOTE)
            if Role.POLICE not in await self.wf.roles_of(actor):
                return await self._ignore(actor, event_id, f"M-{measure_id}", Ignored.NOT_POLICE)
            measure = await self.wf.measures.require(measure_id)
            if measure.acknowledged_by or not measure.state.in_force:
                return ReactionResult()
            return ReactionResult(
                acknowledged=await self.wf.measures.acknowledge(actor, event_id, measure_id)
            )
        assert proposal is not None
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

    async def unreact(
        self, actor: str, event_id: str, reaction_event_id: str, *, room_id: str
    ) -> None:
        """A redaction seen in `room_id` withdraws a vote only when its sender is the voter,
        in the prompt's room, while the proposal or warning is open. Anyone else's redaction
        (a room moderator may redact any event) is audited and the vote stays counted: the
        restart read-back (bot/reconcile.py) hands it here too, so both paths agree."""
        cast = await self._ballot(reaction_event_id)
        if cast is None:
            return
        ref, voter = cast
        sent = await self.store.event_of_ref(ref)
        why = ""
        if actor != voter:
            why = "redacted by someone other than the voter"
        elif sent is None or sent[0] != room_id:
            why = "the redaction is not in the prompt's room"
        if why:
            detail = {"reason": why, "voter": voter}
            await self.wf.audit(actor, "vote.redaction_ignored", _name(ref), event_id, detail)
            return
        found = await self._open_votes(ref)
        if found is None:
            return
        votes, _, name = found
        await votes.withdraw_vote(reaction_event_id, self.wf.now)
        await self.wf.audit(actor, "vote.withdrawn", name, event_id, {})

    async def _ballot(self, reaction_event_id: str) -> tuple[str, str] | None:
        """(prompt ref, voter) of a reaction that counted as a vote."""
        warning = await self.wf.store.early_warning.vote_warning(reaction_event_id)
        if warning is not None:
            return warning_ref(warning[0]), warning[1]
        proposal = await self.store.vote_proposal(reaction_event_id)
        if proposal is not None:
            return f"prompt:P-{proposal[0]}", proposal[1]
        return None

    async def _open_votes(
        self, ref: str
    ) -> tuple[MeasureStore | EarlyWarningStore, int, str] | None:
        """(vote store, id, name) of the proposal or sector warning the prompt `ref` is for,
        locked, if it is still open; None once it is decided."""
        if ref.startswith("warning:W-"):
            warnings = self.wf.store.early_warning
            warning = await warnings.warning(int(ref.removeprefix("warning:W-")), lock=True)
            if warning is None or warning.state is not WarningState.PENDING:
                return None
            return warnings, warning.id, warning.ref
        proposal = await self.store.lock_proposal(int(ref.removeprefix("prompt:P-")))
        if proposal is None or proposal.state is not ProposalState.PENDING:
            return None
        return self.store, proposal.id, proposal.ref

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

    async def missing_votes(self, ref: str, present: set[str]) -> list[str]:
        """Reactions counted as votes on the open prompt `ref` that the relations API no
        longer returns (`present`): redacted while nobody watched. Not withdrawn here: who
        redacted them decides (see `unreact`), so the runtime looks each redaction up."""
        found = await self._open_votes(ref)
        if found is None:
            return []
        votes, owner, _ = found
        return [
            vote.reaction_event_id
            for vote in await votes.votes(owner)
            if vote.reaction_event_id not in present
        ]

    async def rationale(
        self,
        actor: str,
        event_id: str,
        thread_root: str,
        text: str,
        *,
        room_id: str,
        relation_matches: bool = True,
    ) -> Proposal | None:
        """A thread reply on a prompt, in its room, from an approver who has a vote standing
        on it (so never the proposer); the first one is kept with the decision. Anyone
        else's words would be recorded as the reason of a decision they took no part in."""
        kind, proposal, _ = await self._proposal_of(thread_root)
        if kind != "prompt" or proposal is None or not text.strip() or not relation_matches:
            return None
        sent = await self.store.event_of_ref(prompt_ref(proposal))
        if sent is None or sent[0] != room_id or actor == proposal.proposer:
            return None
        if Role.APPROVER not in await self.wf.roles_of(actor):
            return None
        if actor not in {vote.voter for vote in await self.store.votes(proposal.id)}:
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
