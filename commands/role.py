"""`!role …`: admins grant and revoke roles; audited, announced, never to themselves.

approver, warning_approver and admin wait for a second admin's ✅; other roles are in force
at once. Roles from the config file cannot be revoked here; `aegis role` on the host is the
recovery path."""

from __future__ import annotations

from commands.arguments import UserId
from commands.context import Context
from commands.declaration import command
from commands.formatting import count
from commands.replies import Reply, Severity
from commands.role_views import changed, requested
from config import Role
from workflow.role_model import RoleRequest


@command(
    "role grant",
    role=Role.ADMIN,
    help="Give another user a role: approver, warning_approver and admin once a second admin "
    "confirms with ✅ in the approvals room, other roles at once.",
    examples=["!role grant @bob:nccn.example analyst", "!role grant @eve:nccn.example approver"],
)
async def role_grant(ctx: Context, user: UserId, role: Role) -> Reply:
    granted = await ctx.workflow.roles.grant(ctx.actor, ctx.event_id, ctx.room_id, user, role)
    if isinstance(granted, RoleRequest):
        return requested(granted)
    return Reply(f"{user} now holds {role}", Severity.SUCCESS, also=changed(granted))


@command(
    "role revoke",
    role=Role.ADMIN,
    help="Take a role away from a user, at once (not a role from the config file).",
    examples=["!role revoke @bob:nccn.example analyst"],
)
async def role_revoke(ctx: Context, user: UserId, role: Role) -> Reply:
    revoked = await ctx.workflow.roles.revoke(ctx.actor, ctx.event_id, user, role)
    return Reply(f"{user} no longer holds {role}", Severity.SUCCESS, also=changed(revoked))


@command(
    "role list",
    role=Role.ADMIN,
    help="Everyone who holds a role, and which (config: from the config file); grants "
    "waiting for a second admin.",
)
async def role_list(ctx: Context) -> Reply:
    holders = await ctx.workflow.roles.holders()
    lines = [
        f"{h.user_id}: "
        + ", ".join(f"{r} (config)" if r in h.seeded else str(r) for r in sorted(h.roles))
        for h in holders
    ]
    lines += [
        f"{r.ref} waiting: {r.role} for {r.user_id}, asked by {r.requested_by}"
        for r in await ctx.workflow.roles.pending()
    ]
    verb = "holds" if len(holders) == 1 else "hold"
    return Reply(f"{count(len(holders), 'user')} {verb} a role", lines=tuple(lines))
