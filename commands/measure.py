"""`!measure …`, `!proposal withdraw`, `!approvals`: protective measures and their approval."""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from commands.arguments import End, Kind, Mine, Opt, Rest, Spelled, Start, register_type
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef, reader
from commands.errors import ArgumentError, shown
from commands.formatting import age, count, when
from commands.measure_views import (
    acknowledged,
    change_text,
    decision_announcements,
    measure_period,
    proposed_reply,
    state_word,
    what,
)
from commands.replies import Link, Reply, Severity
from config import Role
from workflow.access import Data
from workflow.approvals import Decision, prompt_ref
from workflow.model import MeasureState, MeasureType, ProposalAction, ProposalState
from workflow.persons import PersonPick


class MeasureRef(int):
    """`M-12`."""


class ProposalRef(int):
    """`P-7`."""


R = TypeVar("R", bound=int)


def numbered(prefix: str, kind: type[R]) -> object:
    pattern = re.compile(rf"^{prefix}-(\d{{1,9}})$", re.IGNORECASE)

    def parse(text: str, ctx: Context) -> R:
        match = pattern.match(text.strip())
        if not match:
            raise ArgumentError(f"{shown(text)} is not an ID of the form {prefix}-<number>")
        return kind(int(match.group(1)))

    return parse


register_type(MeasureRef, numbered("M", MeasureRef), name="M-id")  # type: ignore[arg-type]
register_type(ProposalRef, numbered("P", ProposalRef), name="P-id")  # type: ignore[arg-type]


class Flag(str):
    """`yes`/`no`."""


FLAGS = ("yes", "no")


def _parse_flag(text: str, ctx: Context) -> Flag:
    if text.lower() not in FLAGS:
        raise ArgumentError(f"{shown(text)} is not yes or no")
    return Flag(text.lower())


register_type(Flag, _parse_flag, name="yes|no", choices=FLAGS)


class StatusFilter(str):
    pass


STATUS_FILTERS: dict[str, list[MeasureState] | None] = {
    "proposed": [MeasureState.PROPOSED, MeasureState.PROVISIONAL],
    "active": [MeasureState.ACTIVE, MeasureState.PROVISIONAL],
    "ended": [
        MeasureState.ENDED,
        MeasureState.EXPIRED,
        MeasureState.REJECTED,
        MeasureState.WITHDRAWN,
    ],
    "all": None,
}


def _parse_status(text: str, ctx: Context) -> StatusFilter:
    if text.lower() not in STATUS_FILTERS:
        raise ArgumentError(f"{shown(text)} is not one of: {', '.join(STATUS_FILTERS)}")
    return StatusFilter(text.lower())


register_type(StatusFilter, _parse_status, name="proposed|active|ended|all", choices=STATUS_FILTERS)


@command(
    "measure propose",
    role=Role.LIAISON,
    help="Propose a protective measure, for the dossier as a whole or for one person in it "
    "(for=2 or for=D-2026-0007/2); the minister's office approves it by reaction.",
    examples=[
        '!measure propose D-2026-0007 close-protection start=tomorrow end="in 10 days" '
        "executor=DAB visit programme includes public appearances",
        "!measure propose D-2026-0007 close-protection for=1 threatened on social media",
        "!measure propose D-2026-0007 patrol urgent=yes threats posted this morning",
    ],
)
async def measure_propose(
    ctx: Context,
    dossier: DossierRef,
    type: MeasureType,
    details: Rest[str],
    start: Opt[Start | None] = None,
    end: Opt[End | None] = None,
    executor: Opt[str | None] = None,
    urgent: Opt[Flag | None] = None,
    for_person: Annotated[PersonPick | None, Kind.OPTION, Spelled("for")] = None,
) -> Reply:
    proposed = await ctx.workflow.measures.propose(
        ctx.actor,
        ctx.event_id,
        ctx.room_id,
        dossier,
        type=type,
        starts_at=start,
        ends_at=end,
        executor=executor,
        urgent=urgent == "yes",
        details=details,
        person=for_person,
    )
    return proposed_reply(proposed, ctx.now, ctx.tz)


async def _change(
    ctx: Context, measure: int, action: ProposalAction, changes: dict[str, str], reason: str
) -> Reply:
    proposed = await ctx.workflow.measures.change(
        ctx.actor, ctx.event_id, ctx.room_id, measure, action, changes, reason
    )
    return proposed_reply(proposed, ctx.now, ctx.tz)


@command(
    "measure extend",
    role=Role.LIAISON,
    help="Propose a later end for a measure in force.",
    examples=['!measure extend M-3 end="31 december" visit prolonged'],
)
async def measure_extend(
    ctx: Context, measure: MeasureRef, end: Opt[End], reason: Rest[str]
) -> Reply:
    # The proposal keeps the new end as an ISO instant (machine data); `what` shows it.
    return await _change(ctx, measure, ProposalAction.EXTEND, {"ends_at": end.isoformat()}, reason)


@command(
    "measure limit",
    role=Role.LIAISON,
    help="Propose to narrow a measure in force.",
    examples=['!measure limit M-3 "daytime patrols only" threat has decreased'],
)
async def measure_limit(ctx: Context, measure: MeasureRef, change: str, reason: Rest[str]) -> Reply:
    return await _change(ctx, measure, ProposalAction.LIMIT, {"limit": change}, reason)


@command(
    "measure maintain",
    role=Role.LIAISON,
    help="Propose to keep a measure as it is, with a new review date.",
    examples=['!measure maintain M-3 review="in 30 days" threat unchanged'],
)
async def measure_maintain(
    ctx: Context, measure: MeasureRef, reason: Rest[str], review: Opt[End | None] = None
) -> Reply:
    changes = {"review_at": review.isoformat()} if review else {}
    return await _change(ctx, measure, ProposalAction.MAINTAIN, changes, reason)


@command(
    "measure end",
    role=Role.LIAISON,
    help="Propose to end a measure in force.",
    examples=["!measure end M-3 the visit is over"],
)
async def measure_end(ctx: Context, measure: MeasureRef, reason: Rest[str]) -> Reply:
    return await _change(ctx, measure, ProposalAction.END, {}, reason)


@command(
    "measure ack",
    role=Role.POLICE,
    help="Acknowledge an execution order (police).",
    examples=["!measure ack M-3"],
)
async def measure_ack(ctx: Context, measure: MeasureRef) -> Reply:
    acked = await ctx.workflow.measures.acknowledge(ctx.actor, ctx.event_id, measure)
    return Reply(
        f"{acked.measure.ref} acknowledged by {ctx.actor}",
        Severity.SUCCESS,
        also=acknowledged(acked, ctx.tz),
    )


@command(
    "measure list",
    help=(
        "Measures, of one dossier or all, by status; in a dossier's room, that dossier's. "
        "`mine`: those you proposed, voted on, execute or acknowledged."
    ),
    examples=[
        "!measure list D-2026-0007",
        "!measure list status=proposed",
        "!measure list mine status=all",
    ],
)
async def measure_list(
    ctx: Context,
    dossier: DossierRef | None = None,
    whose: Mine | None = None,
    status: Opt[StatusFilter | None] = None,
) -> Reply:
    states = STATUS_FILTERS[status or "active"]
    if dossier is None:
        own = await ctx.workflow.dossiers.for_room(ctx.room_id)
        dossier = None if own is None else DossierRef(own)
    involving = ctx.actor if whose else None
    measures = await ctx.workflow.measures.listing(dossier, states, involving)
    if not measures:
        return Reply("No measures match.")
    return Reply(
        count(len(measures), "measure"),
        lines=tuple(
            f"{m.ref} · {m.dossier_ref} · {m.type} · {state_word(m, ctx.now, ctx.tz)} · "
            f"{measure_period(m, ctx.tz)}"
            + ("" if m.acknowledged_by or not m.state.in_force else " · not acknowledged")
            for m in measures
        ),
        # Periods of protection measures: what the police see in their orders, no more.
        carries=Data.EXECUTION,
    )


@command(
    "measure show",
    help="A measure and its history of proposals and decisions.",
    examples=["!measure show M-3"],
)
async def measure_show(ctx: Context, measure: MeasureRef) -> Reply:
    history = await ctx.workflow.measures.history(measure, reader(ctx, "measure show"))
    m = history.measure
    return Reply(
        f"{m.ref} — {m.type} for {history.person.label if history.person else m.dossier_ref}",
        fields=(
            ("State", state_word(m, ctx.now, ctx.tz)),
            ("Details", m.details),
            ("Period", measure_period(m, ctx.tz)),
            ("Review", when(m.review_at, ctx.tz)),
            ("Executor", m.executor or "police"),
            (
                "Acknowledged",
                f"{m.acknowledged_by}, {when(m.acknowledged_at, ctx.tz)}"
                if m.acknowledged_by
                else "no",
            ),
        ),
        lines=tuple(
            f"{p.ref} {p.action} by {p.proposer} {when(p.created_at, ctx.tz)} — {p.state}"
            + (f" by {p.decided_by} {when(p.decided_at, ctx.tz)}" if p.decided_at else "")
            + (f" — {change_text(p.changes, ctx.tz)}" if p.changes else "")
            + (f" — rationale: {p.rationale}" if p.rationale else "")
            for p in history.proposals
        ),
        carries=Data.DOSSIER,
    )


@command(
    "proposal withdraw",
    help="Withdraw your own pending proposal.",
    examples=["!proposal withdraw P-5"],
)
async def proposal_withdraw(ctx: Context, proposal: ProposalRef) -> Reply:
    proposed = await ctx.workflow.measures.withdraw(ctx.actor, ctx.event_id, proposal)
    decision = Decision(proposed, ProposalState.WITHDRAWN, ctx.actor, ctx.now, None)
    return Reply(
        f"Withdrawn {proposed.proposal.ref}: {what(proposed, ctx.tz)}",
        Severity.SUCCESS,
        also=tuple(a for a in decision_announcements(decision, ctx.tz) if a.replaces),
    )


@command("approvals", help="Proposals waiting for a decision, oldest first.")
async def approvals(ctx: Context) -> Reply:
    pending = await ctx.workflow.measures.pending(reader(ctx, "approvals"))
    if not pending:
        return Reply("No proposal is waiting for a decision.")
    return Reply(
        f"{count(len(pending), 'proposal')} waiting",
        lines=tuple(
            f"{p.proposal.ref} · {age(p.proposal.created_at, ctx.now)} old · {p.dossier.ref} · "
            f"{what(p, ctx.tz)}" + (" · URGENT" if p.proposal.urgent else "")
            for p in pending
        ),
        # Each proposal's ID leads to its prompt, where the approvers vote.
        links=tuple(Link(p.proposal.ref, prompt_ref(p.proposal)) for p in pending),
    )
