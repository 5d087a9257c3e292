"""Role grants that wait for a second admin, shared by the role rules, storage and views."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from config import Role

# Grants that let their holder decide (measures, sector warnings) or grant roles: one admin
# alone could otherwise give them to a second account of his own and approve his own proposal.
CONFIRMED_ROLES = frozenset({Role.APPROVER, Role.WARNING_APPROVER, Role.ADMIN})


class RequestState(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RoleRequest:
    id: int
    user_id: str
    role: Role
    requested_by: str
    origin_room: str
    state: RequestState
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None

    @property
    def ref(self) -> str:
        return f"R-{self.id}"


def grant_ref(request_id: int) -> str:
    """The outbox name of a request's prompt in the approvals room, found again by the
    reactions on it."""
    return f"grant:R-{request_id}"


@dataclass(frozen=True)
class RoleChange:
    """A role granted or revoked, in force now; `request` if a second admin confirmed it."""

    user_id: str
    role: Role
    granted: bool
    by: str
    request: RoleRequest | None = None


@dataclass(frozen=True)
class RequestDecision:
    """A pending grant confirmed, rejected or expired."""

    request: RoleRequest
    outcome: RequestState
    by: str
