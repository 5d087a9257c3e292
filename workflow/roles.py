"""Granting and revoking roles, layered over the config file's seed, with four eyes.

No one grants a role to themselves. A grant of approver, warning_approver or admin is only
a request until a second admin (neither the requester nor the grantee) confirms it with ✅
on its prompt; any admin's ❌ rejects it, and it expires like a proposal. Other roles are in
force at once. Roles seeded in the config file hold whatever the database says, so chat can
neither revoke them nor outvote the file. `aegis role` on the host is the recovery path: its
grants need no second admin, because the operator of the host is trusted with the file too.
Every refusal is audited."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from config import Occasion, Role
from workflow.approvals import Ignored
from workflow.errors import Refused
from workflow.model import Choice
from workflow.role_model import (
    CONFIRMED_ROLES,
    RequestDecision,
    RequestState,
    RoleChange,
    RoleRequest,
)

if TYPE_CHECKING:
    from workflow.core import Workflow


@dataclass(frozen=True)
class GrantVote:
    """What a reaction on a grant's prompt did: nothing, or decided the request."""

    ignored: Ignored | None = None
    decision: RequestDecision | None = None


@dataclass(frozen=True)
class Holder:
    """Who holds roles: from the config file (`seeded`), granted since (`granted`)."""

    user_id: str
    seeded: frozenset[Role]
    granted: frozenset[Role]

    @property
    def roles(self) -> frozenset[Role]:
        return self.seeded | self.granted


class RoleRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = workflow.store

    async def _refuse(
        self, actor: str, action: str, user: str, event_id: str, why: str
    ) -> NoReturn:
        await self.wf.refuse(actor, action, user, event_id, why)
        raise Refused(why)

    async def _check_grant(self, actor: str, event_id: str, user: str, role: Role) -> None:
        if not self.wf.access.server_allowed(user):
            await self._refuse(
                actor, "role grant", user, event_id, f"{user} is on a server that is not allowed"
            )
        if role in await self.wf.roles_of(user):
            await self._refuse(actor, "role grant", user, event_id, f"{user} already holds {role}")
        for waiting in await self.store.pending_role_requests():
            if (waiting.user_id, waiting.role) == (user, role):
                why = f"{waiting.ref} already asks for {role} for {user}; confirm it with ✅"
                await self._refuse(actor, "role grant", user, event_id, why)

    async def grant(
        self, actor: str, event_id: str, room_id: str, user: str, role: Role
    ) -> RoleChange | RoleRequest:
        """From chat: in force at once, or a request that waits for a second admin."""
        if user == actor:
            why = "no one grants a role to themselves; ask another admin"
            await self._refuse(actor, "role grant", user, event_id, why)
        await self._check_grant(actor, event_id, user, role)
        if role not in CONFIRMED_ROLES:
            return await self._apply(actor, event_id, user, role, None)
        request = await self.store.add_role_request(
            {
                "user_id": user,
                "role": role.value,
                "requested_by": actor,
                "origin_room": room_id,
                "created_at": self.wf.now,
            }
        )
        await self.wf.audit(
            actor, "role.requested", user, event_id, {"role": role.value, "request": request.ref}
        )
        return request

    async def grant_from_host(self, actor: str, user: str, role: Role) -> RoleChange:
        """`aegis role grant`: the operator on the host is the recovery path, so no second
        admin is asked (the same operator could edit the config file)."""
        await self._check_grant(actor, "", user, role)
        return await self._apply(actor, "", user, role, None)

    async def _apply(
        self, by: str, event_id: str, user: str, role: Role, request: RoleRequest | None
    ) -> RoleChange:
        await self.store.set_role(user, role.value, True, by, self.wf.now)
        detail = {"role": role.value}
        if request is not None:
            detail.update(request=request.ref, requested_by=request.requested_by)
        await self.wf.audit(by, "role.grant", user, event_id, detail)
        return RoleChange(user, role, True, by, request)

    async def revoke(self, actor: str, event_id: str, user: str, role: Role) -> RoleChange:
        """From chat or from `aegis role revoke`: in force at once, never over the seed."""
        if self.wf.access.seeded(user, role):
            why = f"{user} holds {role} from the config file; only the config file can take it away"
            await self._refuse(actor, "role revoke", user, event_id, why)
        if role not in await self.wf.roles_of(user):
            await self._refuse(actor, "role revoke", user, event_id, f"{user} does not hold {role}")
        if user == actor and role is Role.ADMIN:
            why = "an admin cannot revoke their own admin role"
            await self._refuse(actor, "role revoke", user, event_id, why)
        await self.store.set_role(user, role.value, False, actor, self.wf.now)
        await self.wf.audit(actor, "role.revoke", user, event_id, {"role": role.value})
        return RoleChange(user, role, False, actor)

    async def react(self, actor: str, event_id: str, request_id: int, choice: Choice) -> GrantVote:
        """✅ from an admin who is neither the requester nor the grantee confirms; ❌ from
        any admin rejects. Decided once, under a row lock."""
        request = await self.store.role_request(request_id, lock=True)
        if request is None:
            return GrantVote(ignored=Ignored.NOT_A_PROMPT)
        why = None
        if request.state is not RequestState.PENDING:
            why = Ignored.DECIDED
        elif Role.ADMIN not in await self.wf.roles_of(actor):
            why = Ignored.NOT_ADMIN
        elif choice is Choice.APPROVE and actor == request.requested_by:
            why = Ignored.REQUESTER
        elif choice is Choice.APPROVE and actor == request.user_id:
            why = Ignored.GRANTEE
        if why is not None:
            await self.wf.audit(actor, "vote.ignored", request.ref, event_id, {"reason": why.value})
            return GrantVote(ignored=why)
        outcome = RequestState.REJECTED if choice is Choice.REJECT else RequestState.CONFIRMED
        return GrantVote(decision=await self._close(request, outcome, actor, event_id))

    async def expire(self, request_id: int) -> RequestDecision | None:
        request = await self.store.role_request(request_id, lock=True)
        if request is None:
            return None
        return await self._close(request, RequestState.EXPIRED, "expiry", "")

    async def _close(
        self, request: RoleRequest, outcome: RequestState, by: str, event_id: str
    ) -> RequestDecision | None:
        if not await self.store.close_role_request(request.id, outcome, by, self.wf.now):
            return None
        decided = await self.store.role_request(request.id)
        assert decided is not None
        if outcome is RequestState.CONFIRMED:
            # Granted by the confirming admin: without them nothing would hold.
            await self._apply(by, event_id, request.user_id, request.role, decided)
        else:
            actor = "aegis" if outcome is RequestState.EXPIRED else by
            await self.wf.audit(
                actor,
                f"role.{outcome}",
                request.user_id,
                event_id,
                {"role": request.role.value, "request": request.ref},
            )
        return RequestDecision(decided, outcome, by)

    async def pending(self) -> list[RoleRequest]:
        return await self.store.pending_role_requests()

    async def holders(self) -> list[Holder]:
        """Everyone who holds a role, seeded and granted apart, in user ID order."""
        changes = await self.store.all_role_changes()
        found = []
        for user in sorted(set(self.wf.access.roles) | set(changes)):
            if not self.wf.access.server_allowed(user):
                continue
            seeded = frozenset(self.wf.access.roles.get(user, frozenset()))
            granted = frozenset(Role(r) for r, on in changes.get(user, {}).items() if on)
            if seeded or granted:
                found.append(Holder(user, seeded, granted - seeded))
        return found

    async def to_mention(self, occasion: Occasion, besides: Iterable[str] = ()) -> tuple[str, ...]:
        """Who must act on a post of this kind: the holders of the roles the config names
        for it, in user ID order; never `besides` (a proposer may not vote on their own)."""
        wanted = self.wf.policy.mentions.get(occasion, frozenset())
        left_out = set(besides)
        return tuple(
            h.user_id
            for h in await self.holders()
            if h.roles & wanted and h.user_id not in left_out
        )

    async def everyone(self) -> dict[str, frozenset[Role]]:
        return {holder.user_id: holder.roles for holder in await self.holders()}
