"""`!ew …`: triage the companies' early-warning reports and warn a sector back."""

from __future__ import annotations

from typing import Annotated

from commands.arguments import Kind, Opt, Page, Rest, Spelled, register_type
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef
from commands.early_warning_views import one_line, place, report_fields, warning_prompt
from commands.errors import ArgumentError, shown
from commands.formatting import count, when
from commands.measure import numbered
from commands.replies import Reply, Severity
from config import Role
from workflow.access import Data
from workflow.early_warning_model import ALL_SECTORS, ReportStatus, Sector


class ReportRef(int):
    """`EW-12`."""


class WarningRef(int):
    """`W-3`."""


register_type(ReportRef, numbered("EW", ReportRef), name="EW-id")  # type: ignore[arg-type]
register_type(WarningRef, numbered("W", WarningRef), name="W-id")  # type: ignore[arg-type]


class Verdict(str):
    """`benign` or `suspicious`."""


VERDICTS = ("benign", "suspicious")


def _parse_verdict(text: str, ctx: Context) -> Verdict:
    if text.strip().lower() not in VERDICTS:
        raise ArgumentError(f"{shown(text)} is not benign or suspicious")
    return Verdict(text.strip().lower())


register_type(Verdict, _parse_verdict, name="benign|suspicious", choices=VERDICTS)


class SectorChoice(str):
    """A sector, or `all`."""


SECTOR_CHOICES = (*(s.value for s in Sector), ALL_SECTORS)


def _parse_sector(text: str, ctx: Context) -> SectorChoice:
    if text.strip().lower() not in SECTOR_CHOICES:
        raise ArgumentError(f"{shown(text)} is not one of: {', '.join(SECTOR_CHOICES)}")
    return SectorChoice(text.strip().lower())


register_type(SectorChoice, _parse_sector, name="|".join(SECTOR_CHOICES), choices=SECTOR_CHOICES)


class ReportFilter(str):
    pass


REPORT_FILTERS: dict[str, list[ReportStatus] | None] = {
    "open": [ReportStatus.NEW, ReportStatus.SUSPICIOUS],
    **{status.value: [status] for status in ReportStatus},
    "all": None,
}


def _parse_filter(text: str, ctx: Context) -> ReportFilter:
    if text.strip().lower() not in REPORT_FILTERS:
        raise ArgumentError(f"{shown(text)} is not one of: {', '.join(REPORT_FILTERS)}")
    return ReportFilter(text.strip().lower())


register_type(ReportFilter, _parse_filter, name="|".join(REPORT_FILTERS), choices=REPORT_FILTERS)


@command(
    "ew list",
    help="Early-warning reports from the companies, newest first; open ones by default.",
    examples=["!ew list", "!ew list status=suspicious", "!ew list status=all page=2"],
)
async def ew_list(
    ctx: Context, status: Opt[ReportFilter | None] = None, page: Opt[Page | None] = None
) -> Reply:
    status = status or ReportFilter("open")
    found = await ctx.workflow.early_warning.page(REPORT_FILTERS[status], page or 1)
    if not found.total:
        return Reply(f"No early-warning reports ({status}).")
    more = f" — page {found.page} of {found.pages}" if found.pages > 1 else ""
    return Reply(
        f"Early-warning reports ({status}): {found.total}{more}",
        lines=tuple(one_line(r, ctx.tz) for r in found.reports),
        carries=Data.EARLY_WARNING,
    )


@command(
    "ew show",
    help="One report in full, with the reports it correlates with.",
    examples=["!ew show EW-12"],
)
async def ew_show(ctx: Context, report: ReportRef) -> Reply:
    rules = ctx.workflow.early_warning
    found = await rules.require(report)
    related = await rules.correlated(found)
    fields = [
        *report_fields(found, ctx.tz),
        ("Received", when(found.received_at, ctx.tz)),
        ("Status", str(found.status)),
    ]
    if found.note:
        fields.append(("Assessment", f"{found.note} ({found.assessed_by})"))
    elif found.assessed_by:
        fields.append(("Assessed by", found.assessed_by))
    if found.closed_reason:
        fields.append(("Closed", found.closed_reason))
    if found.dossier_ref:
        fields.append(("Dossier", found.dossier_ref))
    return Reply(
        f"{found.ref}: {found.input.category} at {place(found)}",
        fields=tuple(fields),
        lines=tuple(f"related: {one_line(r, ctx.tz)}" for r in related),
        carries=Data.EARLY_WARNING,
    )


@command(
    "ew assess",
    role=Role.LIAISON,
    help="Assess a report as benign or suspicious; the company sees the new status.",
    examples=["!ew assess EW-12 suspicious same car seen at two sites"],
)
async def ew_assess(
    ctx: Context, report: ReportRef, verdict: Verdict, note: Rest[str | None] = None
) -> Reply:
    status = ReportStatus(verdict)
    assessed = await ctx.workflow.early_warning.assess(
        ctx.actor, ctx.event_id, report, status, note
    )
    return Reply(
        f"{assessed.ref} assessed {status}",
        Severity.WARNING if status is ReportStatus.SUSPICIOUS else Severity.SUCCESS,
        fields=(("Note", note or "—"),),
    )


@command(
    "ew link",
    role=Role.LIAISON,
    help="Add a report to a dossier's timeline.",
    examples=["!ew link EW-12 D-2026-0007"],
)
async def ew_link(ctx: Context, report: ReportRef, dossier: DossierRef) -> Reply:
    linked = await ctx.workflow.early_warning.link(ctx.actor, ctx.event_id, report, dossier)
    return Reply(f"{linked.ref} linked to {dossier}", Severity.SUCCESS)


@command(
    "ew close",
    role=Role.LIAISON,
    help="Close a report with a reason; the company sees it closed.",
    examples=["!ew close EW-12 delivery van of a contractor"],
)
async def ew_close(ctx: Context, report: ReportRef, reason: Rest[str]) -> Reply:
    closed = await ctx.workflow.early_warning.close(ctx.actor, ctx.event_id, report, reason)
    return Reply(f"{closed.ref} closed", Severity.SUCCESS, fields=(("Reason", reason),))


@command(
    "ew warn",
    role=Role.LIAISON,
    help=(
        "Draft a warning to a sector's companies (or all); it is sent only once approved "
        "by reaction in the approvals room."
    ),
    examples=['!ew warn sector=energy "Car 1-ABC-123 scouting company gates" from=EW-12'],
)
async def ew_warn(
    ctx: Context,
    text: str,
    sector: Opt[SectorChoice],
    from_report: Annotated[ReportRef | None, Kind.OPTION, Spelled("from")] = None,
) -> Reply:
    warning = await ctx.workflow.early_warning.draft(
        ctx.actor, ctx.event_id, sector, text, from_report
    )
    return Reply(
        f"{warning.ref} drafted for {warning.sector}; waiting for approval",
        fields=(("Text", warning.text),),
        also=(warning_prompt(warning, "Approvers"),),
    )


@command(
    "ew deliveries",
    help="Who received an approved sector warning, by webhook or by fetching it, and who not.",
    examples=["!ew deliveries W-3"],
)
async def ew_deliveries(ctx: Context, warning: WarningRef) -> Reply:
    found, deliveries = await ctx.workflow.early_warning.deliveries(warning)
    if not deliveries:
        return Reply(f"{found.ref} ({found.state}) has no recipients")
    lines = []
    for d in deliveries:
        if d.webhook_delivered_at:
            how = f"received by webhook {when(d.webhook_delivered_at, ctx.tz)}"
        elif d.fetched_at:
            how = f"fetched {when(d.fetched_at, ctx.tz)}"
        elif d.webhook_failed:
            how = f"NOT received: webhook failed after {d.webhook_attempts} tries ({d.last_error})"
        elif d.partner.webhook_url:
            how = f"NOT received yet: webhook tried {count(d.webhook_attempts, 'time')}"
        else:
            how = "NOT received yet: no webhook, not fetched"
        lines.append(f"{d.partner.name} ({d.partner.sector}): {how}")
    received = sum(d.received for d in deliveries)
    return Reply(
        f"{found.ref} to {found.sector}: {received} of {len(deliveries)} received",
        Severity.SUCCESS if received == len(deliveries) else Severity.WARNING,
        lines=tuple(lines),
        carries=Data.EARLY_WARNING,
    )
