"""Granting and revoking roles in chat: in force at once, audited, layered over the seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from config import Role
from workflow.errors import Refused

if TYPE_CHECKING:
    from workflow.core import Workflow


class RoleRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = workflow.store

    async def grant(self, actor: str, event_id: str, user: str, role: Role) -> None:
        if not self.wf.access.server_allowed(user):
            raise Refused(f"{user} is on a server that is not allowed")
        if role in await self.wf.roles_of(user):
            raise Refused(f"{user} already holds {role}")
        await self.store.set_role(user, role.value, True, actor, self.wf.now)
        await self.wf.audit(actor, "role.grant", user, event_id, {"role": role.value})

    async def revoke(self, actor: str, event_id: str, user: str, role: Role) -> None:
        if role not in await self.wf.roles_of(user):
            raise Refused(f"{user} does not hold {role}")
        if user == actor and role is Role.ADMIN:
            raise Refused("an admin cannot revoke their own admin role")
        await self.store.set_role(user, role.value, False, actor, self.wf.now)
        await self.wf.audit(actor, "role.revoke", user, event_id, {"role": role.value})

    async def everyone(self) -> dict[str, frozenset[Role]]:
        users = set(self.wf.access.roles) | set(await self.store.all_role_changes())
        result = {user: await self.wf.roles_of(user) for user in sorted(users)}
        return {user: roles for user, roles in result.items() if roles}
