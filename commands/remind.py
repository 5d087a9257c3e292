"""`!remind …`: personal reminders, posted in the room where they were set and mentioning
whoever they are for (the sender for `me`, another user with a role, or no one for `room`)."""

from __future__ import annotations

from commands.arguments import Rest, register_type
from commands.context import Context
from commands.declaration import command
from commands.measure import numbered
from commands.remind_parse import parse_request
from commands.reminder_views import list_reply, set_reply
from commands.replies import Reply, Severity


class ReminderRef(int):
    """`RM-3`."""


register_type(ReminderRef, numbered("RM", ReminderRef), name="RM-id")  # type: ignore[arg-type]


@command(
    "remind",
    group="remind",
    help="!remind me|@user|room <when> <text>: at a time (no quotes needed; English, Dutch "
    "or French), every day or week, when a proposal is decided, or before a dossier starts. "
    "Posted in this room, mentioning the user.",
    examples=[
        "!remind me in 10 minutes call the embassy back",
        "!remind me morgen 9u brief the liaison",
        "!remind @lia:aegis.example demain 14h appeler le SPF",
        "!remind room every monday 9:00 weekly threat review",
        "!remind me when P-5 is decided",
        "!remind me 1 day before D-2026-0001 starts check the route",
    ],
)
async def remind(ctx: Context, what: Rest[str]) -> Reply:
    request = parse_request(what, ctx)
    scheduled = await ctx.workflow.reminders.set(ctx.actor, ctx.event_id, request)
    return set_reply(scheduled, ctx.actor, ctx.tz)


@command(
    "remind list",
    help="Your pending reminders set in this room (by you or for you).",
    examples=["!remind list"],
)
async def remind_list(ctx: Context) -> Reply:
    found = await ctx.workflow.reminders.mine(ctx.actor, ctx.room_id)
    return list_reply(found, ctx.actor, ctx.tz)


@command(
    "remind cancel",
    help="Cancel a pending reminder you set, or one set for you.",
    examples=["!remind cancel RM-3"],
)
async def remind_cancel(ctx: Context, reminder: ReminderRef) -> Reply:
    cancelled = await ctx.workflow.reminders.cancel(ctx.actor, ctx.event_id, reminder)
    return Reply(f"Cancelled reminder {cancelled.ref}", Severity.SUCCESS)
