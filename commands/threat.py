"""`!threat …`: log OCAD, police and VSSE assessments and read their history."""

from __future__ import annotations

from commands.arguments import End, Opt, Rest, register_type
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef, reader
from commands.errors import ArgumentError, shown
from commands.formatting import when
from commands.replies import DETAILS_WITHHELD, Announcement, Reply, RoomKey, Severity
from config import Role
from workflow.access import Data
from workflow.model import Source, ThreatLevel


def _parse_level(text: str, ctx: Context) -> ThreatLevel:
    wanted = text.strip().upper()
    for member in ThreatLevel:
        if wanted == str(int(member)) or wanted in member.names:
            return member
    valid = "; ".join(member.label for member in ThreatLevel)
    raise ArgumentError(f"{shown(text)} is not a threat level; valid: {valid}")


register_type(ThreatLevel, _parse_level, name="1-4")


@command(
    "threat log",
    role=Role.ANALYST,
    help="Log a threat assessment on a dossier; a change of level is announced.",
    examples=[
        '!threat log D-2026-0007 level=3 source=OCAD review="in 14 days" ref=OCAD/26/311 '
        "online threats against the family",
    ],
)
async def threat_log(
    ctx: Context,
    dossier: DossierRef,
    level: Opt[ThreatLevel],
    source: Opt[Source],
    summary: Rest[str],
    review: Opt[End | None] = None,
    ref: Opt[str | None] = None,
) -> Reply:
    logged = await ctx.workflow.threats.log(
        ctx.actor,
        ctx.event_id,
        dossier,
        level=level,
        source=source,
        summary=summary,
        review_at=review,
        external_ref=ref,
    )
    new = logged.assessment
    announcements: tuple[Announcement, ...] = ()
    # The level is part of the assessment: the brief form says only that it changed.
    brief = Reply(
        f"Threat assessment of {dossier} changed", Severity.WARNING, lines=(DETAILS_WITHHELD,)
    )
    if logged.changed and logged.previous is not None:
        before = logged.previous.level.label
        title = f"Threat level of {dossier} changed: {before} → {new.level.label}"
        if logged.raised_to_serious:
            title = f"THREAT LEVEL RAISED to {new.level.label} — {dossier}"
        announcements = (
            Announcement(
                RoomKey.COORDINATION,
                Reply(
                    title,
                    Severity.WARNING if logged.raised_to_serious else Severity.INFO,
                    fields=(
                        ("Source", str(new.source)),
                        ("By", ctx.actor),
                        ("Summary", new.summary),
                    ),
                    carries=Data.DOSSIER,
                ),
                brief=brief,
            ),
        )
    elif logged.previous is None and logged.raised_to_serious:
        announcements = (
            Announcement(
                RoomKey.COORDINATION,
                Reply(
                    f"THREAT LEVEL {new.level.label} — {dossier} (first assessment)",
                    Severity.WARNING,
                    fields=(
                        ("Source", str(new.source)),
                        ("By", ctx.actor),
                        ("Summary", new.summary),
                    ),
                    carries=Data.DOSSIER,
                ),
                brief=brief,
            ),
        )
    return Reply(
        f"{dossier}: threat level {new.level.label}",
        Severity.WARNING if new.level >= ThreatLevel.SERIOUS else Severity.SUCCESS,
        fields=(("Source", str(new.source)), ("Review", when(new.review_at, ctx.tz))),
        also=announcements,
        carries=Data.DOSSIER,
    )


@command(
    "threat list",
    help="The history of a dossier's threat assessments, newest first.",
    examples=["!threat list D-2026-0007"],
)
async def threat_list(ctx: Context, dossier: DossierRef) -> Reply:
    history = await ctx.workflow.threats.history(dossier, reader(ctx, "threat list"))
    if not history:
        return Reply(f"{dossier} has no threat assessment yet.")
    return Reply(
        f"Threat assessments of {dossier} ({len(history)})",
        lines=tuple(
            f"{when(a.created_at, ctx.tz)} · {a.level.label} · {a.source} · {a.assessed_by} · "
            f"review {when(a.review_at, ctx.tz)} · {a.summary}"
            for a in history
        ),
        carries=Data.DOSSIER,
    )
