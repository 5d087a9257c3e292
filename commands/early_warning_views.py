"""How early-warning reports, pattern alerts and sector warnings read in the rooms.

Everything a company wrote goes into Reply fields and lines, which the renderer escapes;
nothing here builds HTML."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from commands.formatting import count, when
from commands.replies import (
    DETAILS_WITHHELD,
    Announcement,
    Link,
    Notify,
    Reply,
    RoomKey,
    Severity,
)
from config import Occasion
from workflow.access import Data
from workflow.early_warning import Submitted, WarningDecision
from workflow.early_warning_model import Report, SectorWarning, WarningState
from workflow.early_warning_refs import warning_ref

APPROVE, REJECT = "✅", "❌"


def place(report: Report) -> str:
    where = report.input.location
    if report.input.lat is not None and report.input.lon is not None:
        where += f" ({report.input.lat:.5f}, {report.input.lon:.5f})"
    return where


def one_line(report: Report, tz: ZoneInfo) -> str:
    plate = f" · plate {report.input.vehicle_plate}" if report.input.vehicle_plate else ""
    return (
        f"{report.ref} · {when(report.input.observed_at, tz)} · {report.partner_name} · "
        f"{report.input.category} · {report.input.location}{plate} · {report.status}"
    )


def correlation(submitted: Submitted) -> str:
    if not submitted.correlated:
        return "none"
    refs = ", ".join(r.ref for r in submitted.correlated)
    return f"{len(submitted.correlated)} related: {refs}"


def report_fields(report: Report, tz: ZoneInfo) -> tuple[tuple[str, str], ...]:
    details = report.input
    fields = [
        ("Partner", report.partner_name),
        ("Sector", str(report.sector)),
        ("Category", str(details.category)),
        ("Place", place(report)),
        ("Observed", when(details.observed_at, tz)),
    ]
    if details.vehicle_plate:
        fields.append(("Plate", details.vehicle_plate))
    fields.append(("Description", details.description))
    if details.contact:
        fields.append(("Contact", details.contact))
    fields += [("Attachment", link) for link in details.attachments]
    return tuple(fields)


def report_posted(submitted: Submitted, threshold: int, tz: ZoneInfo) -> tuple[Announcement, ...]:
    """The report in the early-warning room; a pattern alert in the coordination room when
    enough correlated reports came together."""
    report = submitted.report
    severity = Severity.WARNING if submitted.correlated else Severity.INFO
    posts = [
        Announcement(
            RoomKey.EARLY_WARNING,
            Reply(
                f"{report.ref}: {report.input.category} reported by {report.partner_name}",
                severity,
                fields=(*report_fields(report, tz), ("Correlation", correlation(submitted))),
                carries=Data.EARLY_WARNING,
            ),
            brief=Reply(
                f"{report.ref}: new early-warning report",
                severity,
                fields=(("Sector", str(report.sector)), ("Correlation", correlation(submitted))),
                lines=(DETAILS_WITHHELD,),
            ),
        )
    ]
    if submitted.pattern(threshold):
        group = sorted((*submitted.correlated, report), key=lambda r: r.input.observed_at)
        partners = len({r.partner_id for r in group})
        title = (
            f"PATTERN ALERT: {len(group)} correlated early-warning reports "
            f"from {count(partners, 'partner')}, latest {report.ref}"
        )
        posts.append(
            Announcement(
                RoomKey.COORDINATION,
                Reply(
                    title,
                    Severity.WARNING,
                    lines=tuple(one_line(r, tz) for r in group),
                    carries=Data.EARLY_WARNING,
                ),
                brief=Reply(
                    title,
                    Severity.WARNING,
                    lines=(", ".join(r.ref for r in group), DETAILS_WITHHELD),
                ),
            )
        )
    return tuple(posts)


def warning_prompt(warning: SectorWarning, approvers: str) -> Announcement:
    """Posted in the approvals room; its ✅/❌ reactions are the votes. Those who may vote
    are mentioned, never the drafter, whose vote does not count."""
    title, fields, brief_fields = _warning_head(warning)
    vote = f"{approvers}: react {APPROVE} to send it to the companies, {REJECT} to stop it."
    return Announcement(
        RoomKey.APPROVALS,
        Reply(title, Severity.WARNING, fields=fields, lines=(vote,), carries=Data.EARLY_WARNING),
        ref=warning_ref(warning.id),
        reactions=(APPROVE, REJECT),
        notify=Notify(Occasion.SECTOR_WARNING, besides=(warning.drafted_by,)),
        brief=Reply(title, Severity.WARNING, fields=brief_fields, lines=(DETAILS_WITHHELD, vote)),
    )


def _warning_head(
    warning: SectorWarning,
) -> tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The prompt's title, its fields and its brief form's fields (no text)."""
    origin = f" (from EW-{warning.from_report})" if warning.from_report else ""
    title = f"Approve sector warning {warning.ref} to {warning.sector}{origin}?"
    drafted = ("Drafted by", warning.drafted_by)
    return title, (drafted, ("Text", warning.text)), (drafted,)


def warning_decided(decision: WarningDecision, tz: ZoneInfo) -> tuple[Announcement, ...]:
    """The prompt edited to its decided form, as a measure's is, and the early-warning
    room told, with a link to the prompt."""
    warning = decision.warning
    brief = None
    to_prompt = (Link(warning.ref, warning_ref(warning.id)),)
    if warning.state is WarningState.APPROVED:
        title = (
            f"Sector warning {warning.ref} approved by {warning.decided_by}: "
            f"sending to {count(len(decision.recipients), 'partner')} in {warning.sector}"
        )
        # Who receives a sector warning is part of it; the brief form counts them.
        reply = Reply(
            title,
            Severity.SUCCESS,
            lines=tuple(p.name for p in decision.recipients),
            carries=Data.EARLY_WARNING,
            links=to_prompt,
        )
        brief = Reply(title, Severity.SUCCESS, lines=(DETAILS_WITHHELD,), links=to_prompt)
    else:
        reply = Reply(
            f"Sector warning {warning.ref} {warning.state} by {warning.decided_by}; "
            "nothing is sent",
            Severity.WARNING,
            links=to_prompt,
        )
    return (
        _prompt_decided(warning, tz),
        Announcement(RoomKey.EARLY_WARNING, reply, brief=brief),
    )


def _prompt_decided(warning: SectorWarning, tz: ZoneInfo) -> Announcement:
    _, fields, brief_fields = _warning_head(warning)
    word = str(warning.state).upper()
    title = f"{word}: sector warning {warning.ref} to {warning.sector}"
    severity = Severity.SUCCESS if warning.state is WarningState.APPROVED else Severity.WARNING
    decided = ("Decided", f"{word} by {warning.decided_by}, {when(warning.decided_at, tz)}")
    return Announcement(
        RoomKey.APPROVALS,
        Reply(title, severity, fields=(decided, *fields), carries=Data.EARLY_WARNING),
        replaces=warning_ref(warning.id),
        brief=Reply(title, severity, fields=(decided, *brief_fields), lines=(DETAILS_WITHHELD,)),
    )
