"""`!role …`: admins grant and revoke roles; in force at once, audited."""

from __future__ import annotations

from commands.arguments import UserId
from commands.context import Context
from commands.declaration import command
from commands.replies import Reply, Severity
from config import Role


@command(
    "role grant",
    role=Role.ADMIN,
    help="Give a user a role, at once.",
    examples=["!role grant @bob:nccn.example analyst"],
)
async def role_grant(ctx: Context, user: UserId, role: Role) -> Reply:
    await ctx.workflow.roles.grant(ctx.actor, ctx.event_id, user, role)
    return Reply(f"{user} now holds {role}", Severity.SUCCESS)


@command(
    "role revoke",
    role=Role.ADMIN,
    help="Take a role away from a user, at once.",
    examples=["!role revoke @bob:nccn.example analyst"],
)
async def role_revoke(ctx: Context, user: UserId, role: Role) -> Reply:
    await ctx.workflow.roles.revoke(ctx.actor, ctx.event_id, user, role)
    return Reply(f"{user} no longer holds {role}", Severity.SUCCESS)


@command("role list", role=Role.ADMIN, help="Everyone who holds a role, and which.")
async def role_list(ctx: Context) -> Reply:
    everyone = await ctx.workflow.roles.everyone()
    return Reply(
        f"{len(everyone)} users hold a role",
        lines=tuple(f"{user}: {', '.join(sorted(roles))}" for user, roles in everyone.items()),
    )
