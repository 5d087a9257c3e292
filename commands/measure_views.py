"""What the approval flow posts: the prompt, its decided form, orders for the police, and
notices. Shared by the commands, the reaction handler and the scheduler, so a decision
reads the same however it came about."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from commands.early_warning_views import warning_decided
from commands.formatting import age, count, when
from commands.replies import (
    DETAILS_WITHHELD,
    Announcement,
    Link,
    Notify,
    Reply,
    RoomKey,
    Severity,
)
from commands.role_views import decided as grant_decided
from config import Occasion
from workflow.access import Data
from workflow.approvals import Decision, Feedback, ReactionResult, order_ref, prompt_ref
from workflow.measures import Ordered, Proposed
from workflow.model import (
    Choice,
    Dossier,
    Measure,
    MeasureState,
    ProposalAction,
    ProposalState,
    field_name,
)
from workflow.role_model import RequestDecision
from workflow.schedule import Ending, Nudge

APPROVE, REJECT = "✅", "❌"


def threat(proposed: Proposed, now: datetime) -> str:
    if proposed.latest is None:
        return "no assessment on file"
    latest = proposed.latest
    return f"{latest.level.label} ({latest.source}, {age(latest.created_at, now)} old)"


def measure_period(measure: Measure, tz: ZoneInfo) -> str:
    return f"{when(measure.starts_at, tz)} → {when(measure.ends_at, tz)}"


def state_word(measure: Measure, at: datetime, tz: ZoneInfo) -> str:
    """A measure's state as people read it at `at`: the stored state word (`active` for a
    measure in force), except that an approved measure whose start is still to come reads
    "approved, starts <when>" (a provisional one "provisional, starts <when>"), since it
    protects nobody yet. Every listing of measures shows this, never the bare state."""
    if measure.scheduled_at(at):
        word = "approved" if measure.state is MeasureState.ACTIVE else str(measure.state)
        return f"{word}, starts {when(measure.starts_at, tz)}"
    return str(measure.state)


def change_text(changes: dict[str, str], tz: ZoneInfo) -> str:
    """A change proposal's new values as people read them: "end Tue 08 Dec 2026 12:00". The
    proposal keeps them as ISO instants (machine data); they are never shown so."""
    shown = []
    for key, value in changes.items():
        if key.endswith("_at"):
            value = when(datetime.fromisoformat(value), tz)
        shown.append(f"{field_name(key)} {value}")
    return ", ".join(shown)


def what(proposed: Proposed, tz: ZoneInfo) -> str:
    p, m = proposed.proposal, proposed.measure
    if p.action is ProposalAction.CREATE:
        return f"new {m.ref}: {m.type} — {m.type.description}"
    change = {
        ProposalAction.EXTEND: f"extend {m.ref} to {change_text(p.changes, tz)}",
        ProposalAction.LIMIT: f"limit {m.ref}: {p.changes.get('limit', '')}",
        ProposalAction.MAINTAIN: f"maintain {m.ref}"
        + (f", next {change_text(p.changes, tz)}" if "review_at" in p.changes else ""),
        ProposalAction.END: f"end {m.ref}",
    }
    return f"{change[p.action]} ({m.type})"


def _fields(proposed: Proposed, now: datetime, tz: ZoneInfo) -> tuple[tuple[str, str], ...]:
    d, m, p = proposed.dossier, proposed.measure, proposed.proposal
    fields = [
        ("Dossier", f"{d.ref} — {d.title} ({d.kind}/{d.category})"),
        ("For", person.label if (person := d.person(m.person_id)) else "the dossier as a whole"),
        ("Threat level", threat(proposed, now)),
        ("Measure", what(proposed, tz)),
        ("Period", measure_period(m, tz)),
        ("Executor", m.executor or "police"),
        ("Proposed by", f"{p.proposer}, {when(p.created_at, tz)}"),
        ("Reason", p.reason),
    ]
    if p.urgent:
        fields.insert(0, ("URGENT", "in force provisionally until decided"))
    return tuple(fields)


def prompt(proposed: Proposed, now: datetime, tz: ZoneInfo) -> Announcement:
    p = proposed.proposal
    title = f"Approval needed: {p.ref} — {what(proposed, tz)}"
    severity = Severity.WARNING if p.urgent else Severity.INFO
    vote = (
        f"Tap {APPROVE} to approve or {REJECT} to reject; "
        "once you have voted, reply in a thread to give your rationale."
    )
    return Announcement(
        RoomKey.APPROVALS,
        Reply(
            title, severity, fields=_fields(proposed, now, tz), lines=(vote,), carries=Data.DOSSIER
        ),
        ref=prompt_ref(p),
        reactions=(APPROVE, REJECT),
        # The proposer's own vote never counts: only the other approvers are asked.
        notify=Notify(Occasion.APPROVAL, besides=(p.proposer,)),
        brief=Reply(
            title, severity, fields=_brief_fields(proposed), lines=(DETAILS_WITHHELD, vote)
        ),
    )


def _brief_fields(proposed: Proposed) -> tuple[tuple[str, str], ...]:
    """IDs only: the dossier, the proposer; no title, threat, period or reason."""
    p = proposed.proposal
    fields = [("Dossier", proposed.dossier.ref), ("Proposed by", p.proposer)]
    if p.urgent:
        fields.insert(0, ("URGENT", "in force provisionally until decided"))
    return tuple(fields)


def order(measure: Measure, dossier: Dossier, tz: ZoneInfo, provisional: bool) -> Announcement:
    """The police are mentioned: they must acknowledge it."""
    ack = f"Police: acknowledge with {APPROVE} or !measure ack {measure.ref}"
    return replace(
        _order(measure, dossier, tz, provisional, ack, Severity.WARNING),
        ref=order_ref(measure.id),
        reactions=(APPROVE,),
        notify=Notify(Occasion.ORDER),
    )


def order_acknowledged(ordered: Ordered, tz: ZoneInfo) -> Announcement:
    """The order as edited once the police acknowledged it: anyone reading it sees so."""
    m = ordered.measure
    done = f"Acknowledged by {m.acknowledged_by} at {when(m.acknowledged_at, tz)}"
    provisional = m.state is MeasureState.PROVISIONAL
    return replace(
        _order(m, ordered.dossier, tz, provisional, done, Severity.SUCCESS),
        replaces=order_ref(m.id),
    )


def _order(
    measure: Measure,
    dossier: Dossier,
    tz: ZoneInfo,
    provisional: bool,
    status: str,
    severity: Severity,
) -> Announcement:
    d = dossier
    title = f"EXECUTION ORDER {measure.ref}: {measure.type} for {d.ref}"
    if provisional:
        title = f"PROVISIONAL ORDER (urgent, pending decision) {measure.ref}: {measure.type}"
    return Announcement(
        RoomKey.OPERATIONS,
        Reply(
            title,
            severity,
            fields=(
                ("Dossier", f"{d.ref} — {d.title}"),
                ("Measure", f"{measure.type} — {measure.type.description}"),
                ("Details", measure.details),
                ("Period", measure_period(measure, tz)),
                ("Executor", measure.executor or "police"),
            ),
            lines=(status,),
            carries=Data.EXECUTION,
        ),
        brief=Reply(
            title, severity, fields=(("Dossier", d.ref),), lines=(DETAILS_WITHHELD, status)
        ),
    )


def proposed_reply(proposed: Proposed, now: datetime, tz: ZoneInfo) -> Reply:
    p, m = proposed.proposal, proposed.measure
    also = [prompt(proposed, now, tz)]
    if p.urgent and p.action is ProposalAction.CREATE:
        also.append(order(m, proposed.dossier, tz, provisional=True))
    return Reply(
        f"Proposed {p.ref}: {what(proposed, tz)}",
        Severity.SUCCESS,
        fields=(
            ("State", state_word(m, now, tz)),
            ("Approval", "prompt posted in the approvals room"),
        ),
        also=tuple(also),
    )


def decision_announcements(decision: Decision, tz: ZoneInfo) -> tuple[Announcement, ...]:
    proposed, outcome = decision.proposed, decision.outcome
    p, m, d = proposed.proposal, proposed.measure, proposed.dossier
    word = {
        "approved": "APPROVED",
        "rejected": "REJECTED",
        "expired": "EXPIRED",
        "withdrawn": "WITHDRAWN",
    }[outcome]
    severity = Severity.SUCCESS if outcome is ProposalState.APPROVED else Severity.WARNING
    decided = [("Decided", f"{word} by {decision.by}, {when(decision.at, tz)}")]
    if decision.rationale:
        decided.append(("Rationale", decision.rationale))
    decided_brief = (("Decided", f"{word} by {decision.by}, {when(decision.at, tz)}"),)
    now_word = state_word(m, decision.at, tz)
    edited = Announcement(
        RoomKey.APPROVALS,
        Reply(
            f"{word}: {p.ref} — {what(proposed, tz)}",
            severity,
            fields=(*decided, *_fields(proposed, decision.at, tz)),
            carries=Data.DOSSIER,
        ),
        replaces=prompt_ref(p),
        brief=Reply(
            f"{word}: {p.ref} — {what(proposed, tz)}",
            severity,
            fields=(*decided_brief, *_brief_fields(proposed)),
            lines=(DETAILS_WITHHELD,),
        ),
    )
    to_prompt = (Link(p.ref, prompt_ref(p)),)
    notice = Reply(
        f"{p.ref} {outcome}: {what(proposed, tz)}",
        severity,
        fields=(("Dossier", f"{d.ref} — {d.title}"), *decided, ("Measure is now", now_word)),
        carries=Data.DOSSIER,
        links=to_prompt,
    )
    notice_brief = Reply(
        f"{p.ref} {outcome}: {what(proposed, tz)}",
        severity,
        fields=(("Dossier", d.ref), *decided_brief, ("Measure is now", now_word)),
        lines=(DETAILS_WITHHELD,),
        links=to_prompt,
    )
    out = [edited, Announcement(p.origin_room, notice, brief=notice_brief)]
    if p.origin_room != RoomKey.COORDINATION.value:
        out.append(Announcement(RoomKey.COORDINATION, notice, brief=notice_brief))
    if outcome is ProposalState.APPROVED and p.action is ProposalAction.CREATE:
        if p.urgent:
            # Not if it reached its end date while provisional: operations was told then.
            if m.state.in_force:
                out.append(
                    Announcement(
                        RoomKey.OPERATIONS,
                        Reply(f"CONFIRMED: provisional {m.ref} is approved", Severity.SUCCESS),
                    )
                )
        else:
            out.append(order(m, d, tz, provisional=False))
    elif outcome is ProposalState.APPROVED:
        title = f"CHANGE ORDER {m.ref}: {what(proposed, tz)}"
        out.append(
            Announcement(
                RoomKey.OPERATIONS,
                Reply(
                    title,
                    Severity.WARNING,
                    fields=(("Period", measure_period(m, tz)), ("Details", m.details)),
                    carries=Data.EXECUTION,
                ),
                brief=Reply(
                    title,
                    Severity.WARNING,
                    fields=(("Dossier", d.ref),),
                    lines=(DETAILS_WITHHELD,),
                ),
            )
        )
    elif m.state is MeasureState.ENDED and p.urgent:
        title = f"STOP: provisional {m.ref} was {outcome}; the measure has ended"
        out.append(
            Announcement(
                RoomKey.OPERATIONS,
                Reply(
                    title,
                    Severity.ERROR,
                    fields=(("Dossier", f"{d.ref} — {d.title}"),),
                    carries=Data.EXECUTION,
                ),
                brief=Reply(title, Severity.ERROR, fields=(("Dossier", d.ref),)),
            )
        )
    return tuple(out)


def nudge(step: Nudge, tz: ZoneInfo) -> Announcement:
    p = step.proposed.proposal
    title = f"Reminder: {p.ref} has waited {step.waited_hours} h — {what(step.proposed, tz)}"
    tap = f"Tap {APPROVE} or {REJECT} on the prompt above."
    to_prompt = (Link(p.ref, prompt_ref(p)),)
    return Announcement(
        RoomKey.APPROVALS,
        Reply(
            title,
            Severity.WARNING,
            fields=(("Dossier", f"{step.proposed.dossier.ref} — {step.proposed.dossier.title}"),),
            lines=(tap,),
            carries=Data.DOSSIER,
            links=to_prompt,
        ),
        mentions=step.approvers,
        brief=Reply(
            title,
            Severity.WARNING,
            fields=(("Dossier", step.proposed.dossier.ref),),
            lines=(tap,),
            links=to_prompt,
        ),
    )


def ending(step: Ending, tz: ZoneInfo, now: datetime) -> tuple[Announcement, ...]:
    m = step.measure
    if step.warning:
        left = (m.ends_at - now) if m.ends_at else None
        # Rounded, not truncated: a warning due 3 days ahead runs a few seconds later and
        # must still say "3 days", not "2 days".
        days = count(max(round(left / timedelta(days=1)), 0), "day") if left else "soon"
        return (
            Announcement(
                RoomKey.COORDINATION,
                Reply(
                    f"{m.ref} ({m.type}, {m.dossier_ref}) ends in {days}: {when(m.ends_at, tz)}",
                    Severity.WARNING,
                    lines=(
                        f"Still needed? !measure extend {m.ref} end=<when> <reason>",
                        f"Under review: !measure maintain {m.ref} review=<when> <reason>",
                    ),
                ),
            ),
        )
    notice = Reply(
        f"{m.ref} ({m.type}, {m.dossier_ref}) has ended at its end date", Severity.WARNING
    )
    return (
        Announcement(RoomKey.COORDINATION, notice),
        Announcement(
            RoomKey.OPERATIONS,
            Reply(f"STOP executing {m.ref}: it ended at its end date", Severity.WARNING),
        ),
    )


def scheduled(
    outcome: Nudge | Decision | Ending | RequestDecision, tz: ZoneInfo, now: datetime
) -> tuple[Announcement, ...]:
    if isinstance(outcome, RequestDecision):
        return grant_decided(outcome)
    if isinstance(outcome, Nudge):
        return (nudge(outcome, tz),)
    if isinstance(outcome, Decision):
        return decision_announcements(outcome, tz)
    return ending(outcome, tz, now)


def acknowledged(ordered: Ordered, tz: ZoneInfo) -> tuple[Announcement, ...]:
    """The order edited to show it is handled, and coordination told (with a link to it)."""
    measure = ordered.measure
    return (
        order_acknowledged(ordered, tz),
        Announcement(
            RoomKey.COORDINATION,
            Reply(
                f"Police acknowledged {measure.ref} ({measure.type}) for {measure.dossier_ref}",
                Severity.SUCCESS,
                fields=(("By", measure.acknowledged_by or "—"),),
                links=(Link(measure.ref, order_ref(measure.id)),),
            ),
        ),
    )


def not_counted(feedback: Feedback) -> Announcement:
    """Told once per user and prompt, in the prompt's thread: IDs only, no dossier content."""
    mark = APPROVE if feedback.choice is Choice.APPROVE else REJECT
    return Announcement(
        feedback.room_id,
        Reply(
            f"Your {mark} on {feedback.name} does not count: {feedback.why}",
            Severity.WARNING,
            lines=("Further votes of yours on it will not be answered either.",),
        ),
        mentions=(feedback.voter,),
        thread=feedback.ref,
    )


def reacted(result: ReactionResult, tz: ZoneInfo) -> tuple[Announcement, ...]:
    if result.feedback is not None:
        return (not_counted(result.feedback),)
    if result.decision is not None:
        return decision_announcements(result.decision, tz)
    if result.acknowledged is not None:
        return acknowledged(result.acknowledged, tz)
    if result.warning is not None:
        return warning_decided(result.warning, tz)
    if result.grant is not None:
        return grant_decided(result.grant)
    return ()
