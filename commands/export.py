"""`!export`: a dossier's full record as a file — Markdown to print, JSON for machines.
Both carry the audit entries, so a printed record says who did what, when, from which event.

Markdown is read by people: every time in the one human format, local (`when`). JSON is read
by programs, so it keeps ISO 8601, which they parse without guessing; but each instant is
given in local time with its UTC offset (`2026-12-08T12:00:00+01:00`), so a person who opens
the file reads the same clock time as in chat, and a program still gets the exact instant."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from commands.arguments import Opt
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef, reader
from commands.formatting import when
from commands.replies import Attachment, Reply, Severity
from workflow.access import Data
from workflow.dossiers import DossierRecord, Scope, by_person
from workflow.model import Assessment, Measure


class ExportFormat(enum.StrEnum):
    MD = "md"
    JSON = "json"


def _iso(moment: datetime | None, tz: ZoneInfo) -> str | None:
    return moment.astimezone(tz).isoformat() if moment else None


def _assessment(a: Assessment, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "level": int(a.level),
        "level_name": a.level.label,
        "source": a.source.value,
        "summary": a.summary,
        "reference": a.external_ref,
        "review": _iso(a.review_at, tz),
        "by": a.assessed_by,
        "at": _iso(a.created_at, tz),
    }


def _measure(m: Measure, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": m.ref,
        "type": m.type.value,
        "state": m.state.value,
        "details": m.details,
        "executor": m.executor,
        "start": _iso(m.starts_at, tz),
        "end": _iso(m.ends_at, tz),
        "review": _iso(m.review_at, tz),
        "acknowledged_by": m.acknowledged_by,
        "acknowledged_at": _iso(m.acknowledged_at, tz),
    }


def _scopes(record: DossierRecord) -> tuple[Scope, ...]:
    """The whole dossier first, then every person ever in it, removed ones too."""
    return by_person(record.dossier, record.assessments, record.measures, removed_too=True)


def as_json(record: DossierRecord, tz: ZoneInfo) -> dict[str, Any]:
    """The dossier's own assessments and measures at the top; each person's under them."""
    d = record.dossier
    whole, *persons = _scopes(record)

    def iso(moment: datetime | None) -> str | None:
        return _iso(moment, tz)

    return {
        "dossier": {
            "id": d.ref,
            "kind": d.kind.value,
            "category": d.category,
            "title": d.title,
            "status": d.status.value,
            "basis": d.basis.value if d.basis else None,
            "reference": d.external_ref,
            "lead": d.lead,
            "start": iso(d.starts_at),
            "end": iso(d.ends_at),
            "room": d.room_id,
            "opened_by": d.created_by,
            "opened_at": iso(d.created_at),
            "level": int(d.level) if d.level else None,
            "purged": iso(d.purged_at),
        },
        "assessments": [_assessment(a, tz) for a in whole.assessments],
        "measures": [_measure(m, tz) for m in whole.measures],
        "persons": [
            {
                "id": scope.person.ref,
                "name": scope.person.name,
                "removed": iso(scope.person.removed_at),
                "assessments": [_assessment(a, tz) for a in scope.assessments],
                "measures": [_measure(m, tz) for m in scope.measures],
            }
            for scope in persons
            if scope.person is not None
        ],
        "notes": [{"at": iso(at), "by": by, "text": text} for at, by, text in record.notes],
        "timeline": [
            {"at": iso(e.at), "by": e.actor, "kind": e.kind, "text": e.text}
            for e in record.timeline
        ],
        "audit": [
            {
                "seq": a.seq,
                "at": iso(a.at),
                "actor": a.actor,
                "roles": a.role,
                "action": a.action,
                "event_id": a.event_id,
                "detail": a.detail,
            }
            for a in record.audit
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(record: DossierRecord, ctx: Context) -> str:
    d = record.dossier
    tz = ctx.tz
    lines = [
        f"# {d.ref} — {d.title}",
        "",
        f"*Exported {when(ctx.now, tz)} by {ctx.actor}. Times in {tz.key}.*",
        "",
        "| Field | Value |",
        "|---|---|",
    ]
    rows = [
        ("Kind", f"{d.kind}/{d.category}"),
        ("Status", str(d.status)),
        ("Basis", str(d.basis or "—")),
        ("Reference", d.external_ref or "—"),
        ("Lead", d.lead or "—"),
        ("Persons", ", ".join(p.label for p in d.persons) or "—"),
        ("Period", f"{when(d.starts_at, tz)} → {when(d.ends_at, tz)}"),
        ("Opened", f"{when(d.created_at, tz)} by {d.created_by}"),
        ("Current level", d.level.label if d.level else "no assessment"),
    ]
    if d.purged_at is not None:
        rows.append(("Purged", f"{when(d.purged_at, tz)}: personal data removed (retention)"))
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    for scope in _scopes(record):
        heading = scope.person.label if scope.person else "The dossier as a whole"
        lines += ["", f"## {heading}", ""]
        lines += _assessment_table(scope.assessments, tz)
        lines.append("")
        lines += _measure_table(scope.measures, tz)
    lines += ["", "## Notes", ""]
    lines += [f"- {when(at, tz)}, {by}: {_cell(text)}" for at, by, text in record.notes] or [
        "None."
    ]
    lines += ["", "## Timeline", ""]
    lines += [
        f"- {when(e.at, tz)} · {e.actor} · {e.kind}: {_cell(e.text)}" for e in record.timeline
    ]
    lines += [
        "",
        "## Audit trail",
        "",
        "| # | When | Who | Action | Matrix event |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {a.seq} | {when(a.at, tz)} | {a.actor} | {a.action} | {a.event_id or '—'} |"
        for a in record.audit
    ]
    return "\n".join(lines) + "\n"


def _assessment_table(assessments: tuple[Assessment, ...], tz: ZoneInfo) -> list[str]:
    if not assessments:
        return ["Threat assessments: none."]
    return [
        "| When | Level | Source | By | Review | Summary |",
        "|---|---|---|---|---|---|",
        *(
            f"| {when(a.created_at, tz)} | {a.level.label} | {a.source} | {a.assessed_by} | "
            f"{when(a.review_at, tz)} | {_cell(a.summary)} |"
            for a in assessments
        ),
    ]


def _measure_table(measures: tuple[Measure, ...], tz: ZoneInfo) -> list[str]:
    if not measures:
        return ["Measures: none."]
    return [
        "| Measure | Type | State | Start | End | Details |",
        "|---|---|---|---|---|---|",
        *(
            f"| {m.ref} | {m.type} | {m.state} | {when(m.starts_at, tz)} | "
            f"{when(m.ends_at, tz)} | {_cell(m.details)} |"
            for m in measures
        ),
    ]


@command(
    "export",
    help="Upload a dossier's full record, with its audit entries, as a file.",
    examples=["!export D-2026-0007", "!export D-2026-0007 format=json"],
)
async def export(
    ctx: Context, dossier: DossierRef, format: Opt[ExportFormat | None] = None
) -> Reply:
    record = await ctx.workflow.dossiers.record(dossier, reader(ctx, "export"))
    if format is ExportFormat.JSON:
        data = json.dumps(as_json(record, ctx.tz), ensure_ascii=False, indent=2).encode()
        attachment = Attachment(f"{dossier}.json", "application/json", data)
    else:
        attachment = Attachment(f"{dossier}.md", "text/markdown", as_markdown(record, ctx).encode())
    return Reply(
        f"Export of {dossier}: {attachment.filename}",
        Severity.SUCCESS,
        fields=(("Entries", f"{len(record.timeline)} timeline, {len(record.audit)} audit"),),
        attachments=(attachment,),
        carries=Data.DOSSIER,
    )
