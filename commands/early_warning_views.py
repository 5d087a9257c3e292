"""How early-warning reports, pattern alerts and sector warnings read in the rooms.

Everything a company wrote goes into Reply fields and lines, which the renderer escapes;
nothing here builds HTML."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from commands.formatting import when
from commands.replies import Announcement, Reply, RoomKey, Severity
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
    posts = [
        Announcement(
            RoomKey.EARLY_WARNING,
            Reply(
                f"{report.ref}: {report.input.category} reported by {report.partner_name}",
                Severity.WARNING if submitted.correlated else Severity.INFO,
                fields=(*report_fields(report, tz), ("Correlation", correlation(submitted))),
            ),
        )
    ]
    if submitted.pattern(threshold):
        group = sorted((*submitted.correlated, report), key=lambda r: r.input.observed_at)
        partners = len({r.partner_id for r in group})
        posts.append(
            Announcement(
                RoomKey.COORDINATION,
                Reply(
                    f"PATTERN ALERT: {len(group)} correlated early-warning reports "
                    f"from {partners} partner(s), latest {report.ref}",
                    Severity.WARNING,
                    lines=tuple(one_line(r, tz) for r in group),
                ),
            )
        )
    return tuple(posts)


def warning_prompt(warning: SectorWarning, approvers: str) -> Announcement:
    """Posted in the approvals room; its ✅/❌ reactions are the votes."""
    origin = f" (from EW-{warning.from_report})" if warning.from_report else ""
    return Announcement(
        RoomKey.APPROVALS,
        Reply(
            f"Approve sector warning {warning.ref} to {warning.sector}{origin}?",
            Severity.WARNING,
            fields=(("Drafted by", warning.drafted_by), ("Text", warning.text)),
            lines=(
                f"{approvers}: react {APPROVE} to send it to the companies, {REJECT} to stop it.",
            ),
        ),
        ref=warning_ref(warning.id),
        reactions=(APPROVE, REJECT),
    )


def warning_decided(decision: WarningDecision) -> tuple[Announcement, ...]:
    warning = decision.warning
    if warning.state is WarningState.APPROVED:
        reply = Reply(
            f"Sector warning {warning.ref} approved by {warning.decided_by}: "
            f"sending to {len(decision.recipients)} partner(s) in {warning.sector}",
            Severity.SUCCESS,
            lines=tuple(p.name for p in decision.recipients),
        )
    else:
        reply = Reply(
            f"Sector warning {warning.ref} {warning.state} by {warning.decided_by}; "
            "nothing is sent",
            Severity.WARNING,
        )
    return (
        Announcement(RoomKey.APPROVALS, reply),
        Announcement(RoomKey.EARLY_WARNING, reply),
    )
