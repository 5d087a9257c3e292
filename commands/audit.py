"""`!audit`: who read and who changed a dossier, and when (admins only; looking is audited)."""

from __future__ import annotations

from typing import Any

from commands.arguments import Opt, Page
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef
from commands.formatting import count, when
from commands.replies import Reply
from config import Role
from workflow.access import Data


def _detail(action: str, target: str, ref: str, detail: dict[str, Any]) -> str:
    """What to add after the action: the measure or proposal named, the command of a read
    and, for a listing, how many dossiers it displayed."""
    extra = []
    if target and target != ref:
        extra.append(target)
    if action == "dossier.read" and isinstance(detail.get("command"), str):
        extra.append(f"!{detail['command']}")
        listed = detail.get("dossiers")
        if not target and isinstance(listed, list):
            extra.append(f"{len(listed)} listed")
    if detail.get("purged") is True:
        extra.append("detail purged")
    return f" ({', '.join(extra)})" if extra else ""


@command(
    "audit",
    role=Role.ADMIN,
    help="Who read and who changed a dossier, and when; newest first, 20 a page.",
    examples=["!audit D-2026-0007", "!audit D-2026-0007 page=2"],
)
async def audit(ctx: Context, dossier: DossierRef, page: Opt[Page | None] = None) -> Reply:
    trail = await ctx.workflow.privacy.trail(ctx.actor, ctx.event_id, dossier, page or 1)
    readers = ", ".join(f"{who} ×{n} (last {when(last, ctx.tz)})" for who, n, last in trail.readers)
    return Reply(
        f"Audit trail of {dossier}: {count(trail.total, 'entry', 'entries')}, "
        f"page {trail.page}/{trail.pages}",
        fields=(("Read by", readers or "nobody"),),
        lines=tuple(
            f"#{e.seq} · {when(e.at, ctx.tz)} · {e.actor} · {e.action}"
            + _detail(e.action, e.target, dossier, e.detail)
            for e in trail.entries
        ),
        # Who looked at a protected person's dossier, and when, belongs to the dossier.
        carries=Data.DOSSIER,
    )
