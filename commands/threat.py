"""`!threat …`: log OCAD, police and VSSE assessments and read their history."""

from __future__ import annotations

from commands.arguments import End, Opt, Rest, register_type
from commands.context import Context
from commands.declaration import command
from commands.dossier import DossierRef, reader
from commands.errors import ArgumentError, shown
from commands.formatting import when
from commands.replies import DETAILS_WITHHELD, Announcement, Notify, Reply, RoomKey, Severity
from config import Occasion, Role
from workflow.access import Data
from workflow.model import Source, ThreatLevel
from workflow.persons import PersonPick


def _parse_level(text: str, ctx: Context) -> ThreatLevel:
    wanted = text.strip().upper()
    for member in ThreatLevel:
        if wanted == str(int(member)) or wanted in member.names:
            return member
    valid = "; ".join(member.label for member in ThreatLevel)
    raise ArgumentError(f"{shown(text)} is not a threat level; valid: {valid}")


register_type(
    ThreatLevel,
    _parse_level,
    name="1-4",
    choices=[(str(int(level)), " / ".join(level.names)) for level in ThreatLevel],
)


@command(
    "threat log",
    role=Role.ANALYST,
    help="Log a threat assessment on a dossier, or on one person in it (person=2 or "
    "person=D-2026-0007/2); a change of level is announced.",
    examples=[
        '!threat log D-2026-0007 level=3 source=OCAD review="in 14 days" ref=OCAD/26/311 '
        "online threats against the family",
        "!threat log D-2026-0007 person=2 level=4 source=OCAD named in a threatening video",
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
    person: Opt[PersonPick | None] = None,
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
        person=person,
    )
    new = logged.assessment
    scope = logged.scope
    # The level is part of the assessment: the brief form says only that it changed.
    brief = Reply(
        f"Threat assessment of {scope} changed", Severity.WARNING, lines=(DETAILS_WITHHELD,)
    )
    # At the highest level the liaisons must act on it, so their clients notify them.
    notify = None
    if new.level is ThreatLevel.VERY_SERIOUS:
        notify = Notify(Occasion.THREAT_LEVEL_4, besides=(ctx.actor,))
    title = None
    if logged.changed and logged.previous is not None:
        title = (
            f"Threat level of {scope} changed: {logged.previous.level.label} → {new.level.label}"
        )
        if logged.raised_to_serious:
            title = f"THREAT LEVEL RAISED to {new.level.label} — {scope}"
    elif logged.previous is None and logged.raised_to_serious:
        title = f"THREAT LEVEL {new.level.label} — {scope} (first assessment)"
    announcements: tuple[Announcement, ...] = ()
    if title is not None:
        told = Reply(
            title,
            Severity.WARNING if logged.raised_to_serious else Severity.INFO,
            fields=(("Source", str(new.source)), ("By", ctx.actor), ("Summary", new.summary)),
            carries=Data.DOSSIER,
        )
        # Coordination, and the dossier's own room where those who follow it are.
        room = (await ctx.workflow.dossiers.require(dossier)).room_id
        rooms: tuple[RoomKey | str, ...] = (RoomKey.COORDINATION, *((room,) if room else ()))
        announcements = tuple(
            Announcement(r, told, brief=brief, notify=notify if r is RoomKey.COORDINATION else None)
            for r in rooms
        )
    assessed = (("Person", logged.person.label),) if logged.person else ()
    return Reply(
        f"{scope}: threat level {new.level.label}",
        Severity.WARNING if new.level >= ThreatLevel.SERIOUS else Severity.SUCCESS,
        fields=(
            *assessed,
            ("Source", str(new.source)),
            ("Review", when(new.review_at, ctx.tz)),
        ),
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
