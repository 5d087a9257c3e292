"""nio's room state, as far as the audience check reads it, for tests without a homeserver:
who is joined, who is invited, and whether the room is encrypted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.audience import Audience, RoomState
from storage.store import Store
from workflow import AccessPolicy, RuntimeInfo, Workflow
from workflow.clock import Clock


@dataclass
class FakeRoom:
    users: dict[str, Any] = field(default_factory=dict)
    invited_users: dict[str, Any] = field(default_factory=dict)
    encrypted: bool = True
    # Display names; a member without one is known by their user ID, as in nio.
    names: dict[str, str] = field(default_factory=dict)

    def user_name(self, user_id: str) -> str | None:
        return self.names.get(user_id, user_id) if user_id in self.users else None

    def join(self, *users: str) -> FakeRoom:
        for user in users:
            self.users[user] = None
            self.invited_users.pop(user, None)
        return self

    def invite(self, *users: str) -> FakeRoom:
        for user in users:
            self.users[user] = None
            self.invited_users[user] = None
        return self

    def leave(self, user: str) -> None:
        self.users.pop(user, None)
        self.invited_users.pop(user, None)


def rooms_with(room_ids: Iterable[str], *members: str) -> dict[str, FakeRoom]:
    """Encrypted rooms, each with the same members joined."""
    return {room_id: FakeRoom().join(*members) for room_id in room_ids}


def make_audience(
    access: AccessPolicy,
    rooms: dict[str, FakeRoom],
    own_user_id: str,
    coordination: str,
    clock: Clock,
    info: RuntimeInfo,
) -> Audience:
    def workflow(session: AsyncSession) -> Workflow:
        return Workflow(Store(session), clock.now(), access, info)

    def lookup(room_id: str) -> RoomState | None:
        return rooms.get(room_id)

    return Audience(access, lookup, own_user_id, coordination, workflow)
