"""Who may act, and the audit trail every effect and refusal goes to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from config import Role


class AuditSink(Protocol):
    async def append_audit(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        event_id: str,
        detail: dict[str, Any],
        now: datetime,
    ) -> int: ...


@dataclass(frozen=True)
class AccessPolicy:
    """Roles seeded from the config; a user with none may not command the bot."""

    roles: Mapping[str, frozenset[Role]]
    allowed_servers: frozenset[str]
    home_server: str

    def server_allowed(self, user_id: str) -> bool:
        server = user_id.partition(":")[2]
        if not self.allowed_servers:
            return server == self.home_server
        return server in self.allowed_servers

    def roles_of(self, user_id: str) -> frozenset[Role]:
        if not self.server_allowed(user_id):
            return frozenset()
        return self.roles.get(user_id, frozenset())


@dataclass(frozen=True)
class RuntimeInfo:
    version: str
    started_at: datetime


class Workflow:
    """Bound to one transaction: everything it records commits with the event that caused it."""

    def __init__(
        self, store: AuditSink, now: datetime, access: AccessPolicy, info: RuntimeInfo
    ) -> None:
        self.store = store
        self.now = now
        self.access = access
        self.info = info

    def roles_of(self, user_id: str) -> frozenset[Role]:
        return self.access.roles_of(user_id)

    async def audit(
        self,
        actor: str,
        action: str,
        target: str,
        event_id: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        roles = ",".join(sorted(self.roles_of(actor)))
        await self.store.append_audit(
            actor=actor,
            role=roles,
            action=action,
            target=target,
            event_id=event_id,
            detail=detail or {},
            now=self.now,
        )

    async def refuse(self, actor: str, action: str, target: str, event_id: str, why: str) -> None:
        await self.audit(actor, "refused:" + action, target, event_id, {"reason": why})
