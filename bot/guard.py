"""The membership guard's second half: members who lose their clearance while in a room.

Invites and joins reach the guard as events (bot/pipeline.py). A revocation does not happen
in the room, and may not happen in chat at all (`aegis role` on the host), so after each sync
the guard compares `Store.roles_version()` with the one it last acted on; when it moved, the
members of every dossier room are checked again and the uncleared ones reported and removed,
through the same once-per-membership claim as the events."""

from __future__ import annotations

import logging
from datetime import datetime

from nio import AsyncClient, RoomGetStateResponse

from bot.pipeline import Pipeline, membership_episode
from storage.store import Store
from workflow.membership import Arrival, dossier_room

log = logging.getLogger(__name__)

PRESENT = ("invite", "join")


class MembershipSweep:
    def __init__(self, client: AsyncClient, pipeline: Pipeline) -> None:
        self.client = client
        self.pipeline = pipeline
        # The roles version every dossier room was last checked against; None: not yet,
        # so the first sweep after a start also catches revocations made while away.
        self._checked: tuple[int, datetime | None] | None = None

    async def sweep(self) -> None:
        """Cheap when nothing changed: one query. Otherwise the members nio knows are
        checked first, and only a room with an uncleared member costs a state request
        (for the membership events that name each stay)."""
        suspects: dict[str, list[str]] = {}
        async with self.pipeline.db.snapshot() as session:
            store = Store(session)
            version = await store.roles_version()
            if version == self._checked:
                return
            rooms = await store.dossier_rooms()
            workflow = self.pipeline.workflow(session)
            for room_id, ref in rooms.items():
                known = self.client.rooms.get(room_id)
                if known is None:
                    continue  # not (or no longer) joined: the bot posts nothing there
                room = dossier_room(room_id, ref)
                suspects[room_id] = [
                    user
                    for user in known.users
                    if user != self.pipeline.own_user_id
                    and not await workflow.membership.cleared(user, room)
                ]
        reported = False
        for room_id, users in suspects.items():
            if users:
                reported |= await self._report(room_id, rooms[room_id], set(users))
        self._checked = version
        if reported:
            self.pipeline.wake_sender()

    async def _report(self, room_id: str, ref: str, users: set[str]) -> bool:
        state = await self.client.room_get_state(room_id)
        if not isinstance(state, RoomGetStateResponse):
            raise RuntimeError(f"room state unavailable: {state}")
        reported = False
        async with self.pipeline.db.transaction() as session:
            workflow = self.pipeline.workflow(session)
            room = dossier_room(room_id, ref)
            for event in state.events:
                user = event.get("state_key")
                if (
                    event.get("type") != "m.room.member"
                    or user not in users
                    or (event.get("content") or {}).get("membership") not in PRESENT
                ):
                    continue
                reported |= await self.pipeline.guard(
                    session,
                    workflow,
                    room,
                    user,
                    actor=self.pipeline.own_user_id,
                    event_id=event["event_id"],
                    arrival=Arrival.STAYED,
                    episode=membership_episode(event["event_id"], event),
                )
        return reported
