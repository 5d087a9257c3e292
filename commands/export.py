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
from workflow.dossiers import DossierRecord


class ExportFormat(enum.StrEnum):
    MD = "md"
    JSON = "json"


def as_json(record: DossierRecord, tz: ZoneInfo) -> dict[str, Any]:
    d = record.dossier

    def _iso(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment else None

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
            "subjects": list(d.subjects),
            "start": _iso(d.starts_at),
            "end": _iso(d.ends_at),
            "room": d.room_id,
            "opened_by": d.created_by,
            "opened_at": _iso(d.created_at),
            "level": int(d.level) if d.level else None,
            "purged": _iso(d.purged_at),
        },
        "assessments": [
            {
                "level": int(a.level),
                "level_name": a.level.label,
                "source": a.source.value,
                "summary": a.summary,
                "reference": a.external_ref,
                "review": _iso(a.review_at),
                "by": a.assessed_by,
                "at": _iso(a.created_at),
            }
            for a in record.assessments
        ],
        "notes": [{"at": _iso(at), "by": by, "text": text} for at, by, text in record.notes],
        "timeline": [
            {"at": _iso(e.at), "by": e.actor, "kind": e.kind, "text": e.text}
            for e in record.timeline
        ],
        "audit": [
            {
                "seq": a.seq,
                "at": _iso(a.at),
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
        ("Subjects", ", ".join(d.subjects) or "—"),
        ("Period", f"{when(d.starts_at, tz)} → {when(d.ends_at, tz)}"),
        ("Opened", f"{when(d.created_at, tz)} by {d.created_by}"),
        ("Current level", d.level.label if d.level else "no assessment"),
    ]
    if d.purged_at is not None:
        rows.append(("Purged", f"{when(d.purged_at, tz)}: personal data removed (retention)"))
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines += ["", "## Threat assessments", ""]
    if record.assessments:
        lines += ["| When | Level | Source | By | Review | Summary |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {when(a.created_at, tz)} | {a.level.label} | {a.source} | {a.assessed_by} | "
            f"{when(a.review_at, tz)} | {_cell(a.summary)} |"
            for a in record.assessments
        ]
    else:
        lines.append("None.")
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
