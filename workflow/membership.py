"""The membership guard: who is in a room is who reads what the bot posts there.

The audience check (before each post) keeps personal data out of a room with an uncleared
member; this guard makes such a member visible the moment they arrive, and takes them out
of dossier rooms, whose every post is dossier content. The runtime tells who arrived where;
the rules here say whether they may be there and what follows."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workflow.access import Data

if TYPE_CHECKING:
    from workflow.core import Workflow

# What the bot posts in each configured room (keys of `rooms.*`), so who must be cleared for
# it: prompts and decisions carry dossier content, orders what an execution needs.
ROOM_DATA: Mapping[str, Data] = {
    "coordination": Data.DOSSIER,
    "approvals": Data.DOSSIER,
    "operations": Data.EXECUTION,
    "early_warning": Data.EARLY_WARNING,
}


class Arrival(enum.StrEnum):
    """How an uncleared user came to be a member."""

    INVITED = "invited"
    JOINED = "joined"
    # Already a member when their role was revoked (or the read policy changed).
    STAYED = "no longer cleared"


@dataclass(frozen=True)
class GuardedRoom:
    """A configured room or a dossier room; `label` is what a warning may call it: the
    configured room's key or the dossier's ID, never a title or a person's name."""

    room_id: str
    label: str
    data: Data
    dossier: str | None = None


@dataclass(frozen=True)
class Uncleared:
    user: str
    room: GuardedRoom
    arrival: Arrival
    removed: bool


def configured_room(room_id: str, key: str) -> GuardedRoom:
    return GuardedRoom(room_id, key, ROOM_DATA[key])


def dossier_room(room_id: str, ref: str) -> GuardedRoom:
    return GuardedRoom(room_id, ref, Data.DOSSIER, dossier=ref)


class MembershipRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    async def cleared(self, user: str, room: GuardedRoom) -> bool:
        """May `user` read what the bot posts in `room`? Service accounts always may."""
        return self.wf.access.cleared(user, await self.wf.roles_of(user), room.data)

    async def uncleared(
        self, actor: str, event_id: str, user: str, room: GuardedRoom, arrival: Arrival
    ) -> Uncleared:
        """Records an uncleared member (the caller has checked `cleared` and made sure this
        membership is reported once); a dossier room's is removed unless the config says not."""
        removed = room.dossier is not None and self.wf.access.remove_uncleared
        await self.wf.audit(
            actor,
            "membership.uncleared",
            user,
            event_id,
            {
                "room_id": room.room_id,
                "room": room.label,
                "arrival": arrival.value,
                "removed": removed,
            },
        )
        return Uncleared(user, room, arrival, removed)
