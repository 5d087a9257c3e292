"""`!meeting …` and `!agenda …`: the meeting cadence, one occurrence skipped or moved, and the
agendas (weekly, the monthly "Ambassades" review, the daily digest)."""

from __future__ import annotations

import enum
from datetime import datetime

from commands.agenda_views import agenda_reply, occurrence_line
from commands.arguments import Opt, Rest
from commands.calendar_view import NO_MEETINGS, calendar
from commands.context import Context
from commands.dates import parse_time
from commands.declaration import command
from commands.errors import ArgumentError
from commands.formatting import count, when
from commands.recurrence import describe
from commands.replies import Attachment, Reply, Severity
from config import Role
from workflow.agenda import AgendaKind
from workflow.meetings import offset_label


class AgendaFormat(enum.StrEnum):
    TEXT = "text"
    ICS = "ics"


@command(
    "meeting list",
    help="The configured meetings: schedule, room, agenda and reminders.",
    examples=["!meeting list"],
)
async def meeting_list(ctx: Context) -> Reply:
    specs = ctx.workflow.meetings.specs
    if not specs:
        return Reply("No meetings are configured", lines=(NO_MEETINGS,))
    lines = []
    for spec in specs:
        upcoming = await ctx.workflow.meetings.upcoming(spec.name, 1)
        remind = ", ".join(offset_label(o) for o in spec.remind_before) or "none"
        following = when(upcoming[0].at, ctx.tz) if upcoming else "—"
        lines.append(
            f"{spec.name}: {describe(spec.rrule)} | room {spec.room} | {spec.agenda} agenda | "
            f"reminders {remind} before | next {following}"
        )
    return Reply(count(len(specs), "meeting"), lines=tuple(lines))


@command(
    "meeting next",
    help="The next occurrences of one meeting, or of all.",
    examples=["!meeting next", "!meeting next weekly"],
)
async def meeting_next(ctx: Context, name: str = "") -> Reply:
    found = await ctx.workflow.meetings.upcoming(name or None, 3)
    if not found:
        return Reply("No upcoming meetings")
    return Reply(
        f"Next meetings{f' ({name})' if name else ''}",
        lines=tuple(occurrence_line(o, ctx.tz) for o in found),
    )


@command(
    "meeting skip",
    role=Role.LIAISON,
    help="Skip one occurrence of a meeting (no reminders; cancelled in the calendar).",
    examples=["!meeting skip weekly 2026-12-07 public holiday"],
)
async def meeting_skip(ctx: Context, name: str, date: datetime, reason: Rest[str] = "") -> Reply:
    day = date.astimezone(ctx.tz).date()
    skipped = await ctx.workflow.meetings.skip(ctx.actor, ctx.event_id, name, day, reason.strip())
    return Reply(
        f"Skipped the {skipped.meeting.name} meeting of {when(skipped.at, ctx.tz)}",
        Severity.SUCCESS,
        fields=(("Reason", skipped.reason or "—"),),
    )


@command(
    "meeting move",
    role=Role.LIAISON,
    help="Move one occurrence of a meeting to another time (never into the past).",
    examples=['!meeting move weekly 2026-12-07 to 2026-12-08 14:00 reason="holiday"'],
)
async def meeting_move(
    ctx: Context, name: str, date: datetime, to: Rest[str], reason: Opt[str] = ""
) -> Reply:
    word, _, rest = to.strip().partition(" ")
    if word.lower() != "to" or not rest.strip():
        raise ArgumentError("say where to: !meeting move <name> <date> to <when>")
    target = parse_time(rest.strip(), ctx)
    day = date.astimezone(ctx.tz).date()
    moved = await ctx.workflow.meetings.move(ctx.actor, ctx.event_id, name, day, target, reason)
    return Reply(
        f"Moved the {moved.meeting.name} meeting of {when(moved.original, ctx.tz)} "
        f"to {when(moved.at, ctx.tz)}",
        Severity.SUCCESS,
        fields=(("Reason", moved.reason or "—"),),
    )


async def _agenda(
    ctx: Context, kind: AgendaKind, at: datetime | None, format: AgendaFormat | None
) -> Reply:
    if format is AgendaFormat.ICS:
        series = await ctx.workflow.meetings.series(kind)
        if not series:
            return Reply(f"No {kind} meetings are configured", lines=(NO_MEETINGS,))
        data = calendar(series, ctx.now, ctx.tz, f"Aegis {kind} meetings")
        names = ", ".join(one.meeting.name for one in series)
        return Reply(
            f"Calendar of the {kind} meetings: {names}",
            lines=("Import the attached file, or subscribe to it in your calendar.",),
            attachments=(Attachment(f"aegis-{kind}.ics", "text/calendar", data),),
        )
    agenda = await ctx.workflow.agenda.build(kind, at)
    return agenda_reply(agenda, ctx.tz, ctx.room_id)


@command(
    "agenda weekly",
    help="The weekly meeting's agenda: events of the past and coming week, new assessments, "
    "pending proposals. format=ics gives the meeting calendar.",
    examples=["!agenda weekly", '!agenda weekly week="next monday"', "!agenda weekly format=ics"],
)
async def agenda_weekly(
    ctx: Context, week: Opt[datetime | None] = None, format: Opt[AgendaFormat | None] = None
) -> Reply:
    return await _agenda(ctx, AgendaKind.WEEKLY, week, format)


@command(
    "agenda monthly",
    help='The monthly "Ambassades" review: every measure in force, flagged, with the commands '
    "to propose a decision.",
    examples=["!agenda monthly", '!agenda monthly month="1 december"'],
)
async def agenda_monthly(
    ctx: Context, month: Opt[datetime | None] = None, format: Opt[AgendaFormat | None] = None
) -> Reply:
    return await _agenda(ctx, AgendaKind.MONTHLY, month, format)


@command(
    "agenda daily",
    help="The daily digest: the last 24 hours' changes, what expires or needs review within "
    "48 hours, pending proposals, unacknowledged orders.",
    examples=["!agenda daily"],
)
async def agenda_daily(ctx: Context, format: Opt[AgendaFormat | None] = None) -> Reply:
    return await _agenda(ctx, AgendaKind.DAILY, None, format)
