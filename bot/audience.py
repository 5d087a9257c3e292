"""Who would read a post: the audience check before personal data goes into a room.

Everyone in a room reads what the bot posts there, so a post that carries personal data
(`Reply.carries`) goes only into an end-to-end encrypted room whose joined and invited
members are all cleared for that data (workflow/access.py). Who is in a room comes from
nio's room state, kept current by the sync: no homeserver round trip per post. The verdict
is cached per room; it is recomputed when the room's members or its encryption change, or
when any role is granted or revoked (`Store.roles_version`, which also sees the CLI).

The pipeline judges each post as it is queued and the sender again just before it goes out,
since members may have joined or been invited in between. A command's reply that fails is
withheld and names the members who are not cleared; an automated post falls back to its
brief form (IDs and counts) and coordination is alerted, once per room and set of
uncleared members."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.render import MESSAGE, notice
from commands.replies import Reply, Severity
from storage import outbox
from workflow import AccessPolicy, Workflow
from workflow.access import Data

log = logging.getLogger(__name__)

WITHHELD_TITLE = "Withheld: not everyone in this room may read this"
# The fired table's kind for the coordination alerts and the start-up encryption warnings.
ALERT_KIND = "audience"
UNENCRYPTED_KIND = "unencrypted"


class RoomState(Protocol):
    """What nio's MatrixRoom tells about a room, as far as the check needs it."""

    @property
    def users(self) -> Mapping[str, Any]: ...

    @property
    def invited_users(self) -> Mapping[str, Any]: ...

    @property
    def encrypted(self) -> bool: ...

    def user_name(self, user_id: str) -> str | None: ...


RoomLookup = Callable[[str], RoomState | None]


@dataclass(frozen=True)
class Verdict:
    """Who in a room may not read each kind of data, and whether the room is encrypted."""

    room_id: str
    encrypted: bool
    uncleared: Mapping[Data, tuple[str, ...]]

    def allows(self, data: Data | None) -> bool:
        return data is None or (self.encrypted and not self.uncleared.get(data))

    def not_cleared(self, data: Data) -> tuple[str, ...]:
        return self.uncleared.get(data, ())


def unknown_room(room_id: str) -> Verdict:
    """A room the sync has not brought (yet): nothing personal goes in blind."""
    return Verdict(room_id, encrypted=False, uncleared={})


def withheld(verdict: Verdict, data: Data) -> Reply:
    """What the requester gets instead of an answer the room may not read."""
    lines = []
    if verdict.not_cleared(data):
        lines.append("Not cleared: " + ", ".join(verdict.not_cleared(data)))
    if not verdict.encrypted:
        lines.append("This room is not end-to-end encrypted.")
    lines.append("Ask again in a room where everyone may read it, such as the dossier's room.")
    return Reply(WITHHELD_TITLE, Severity.WARNING, lines=tuple(lines))


def _problems(verdict: Verdict, data: Data) -> tuple[str, ...]:
    problems = []
    if verdict.not_cleared(data):
        problems.append("Not cleared: " + ", ".join(verdict.not_cleared(data)))
    if not verdict.encrypted:
        problems.append("The room is not end-to-end encrypted.")
    return tuple(problems)


@dataclass
class Audience:
    """The check, its per-room cache, and the alerts and audit entries of what it stops."""

    access: AccessPolicy
    rooms: RoomLookup
    own_user_id: str
    coordination: str
    workflow: Callable[[AsyncSession], Workflow]
    _cache: dict[str, tuple[object, Verdict]] = field(default_factory=dict)
    # Rooms last seen unencrypted, for /readyz.
    unencrypted: set[str] = field(default_factory=set)

    def knows(self, room_id: str) -> bool:
        """Whether the sync has brought the room; the sender waits for it before sending."""
        return self.rooms(room_id) is not None

    def addressed(self, room_id: str, users: Iterable[str]) -> dict[str, str]:
        """The users a post in the room mentions, each with the name the room knows them by:
        only joined members (no one else would see it), never the bot. A room the sync has
        not brought yet keeps them all under their user IDs; the sender waits for it."""
        room = self.rooms(room_id)
        wanted = [u for u in dict.fromkeys(users) if u != self.own_user_id]
        if room is None:
            return {user: user for user in wanted}
        return {
            user: room.user_name(user) or user
            for user in wanted
            if user in room.users and user not in room.invited_users
        }

    async def verdict(self, session: AsyncSession, room_id: str) -> Verdict:
        room = self.rooms(room_id)
        if room is None:
            return unknown_room(room_id)
        members = (frozenset(room.users) | frozenset(room.invited_users)) - {self.own_user_id}
        workflow = self.workflow(session)
        key = (members, room.encrypted, await workflow.store.roles_version())
        cached = self._cache.get(room_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        roles = {user: await workflow.roles_of(user) for user in members}
        uncleared = {
            data: tuple(sorted(u for u in members if not self.access.cleared(u, roles[u], data)))
            for data in Data
        }
        found = Verdict(room_id, room.encrypted, uncleared)
        self._cache[room_id] = (key, found)
        if room.encrypted:
            self.unencrypted.discard(room_id)
        else:
            self.unencrypted.add(room_id)
        return found

    async def withhold(
        self, session: AsyncSession, verdict: Verdict, data: Data, actor: str, cause: str
    ) -> Reply:
        """A command's answer stopped: audited under the requester, who is told why."""
        await self.workflow(session).audit(
            actor, "audience.withheld", verdict.room_id, cause, _detail(verdict, data)
        )
        return withheld(verdict, data)

    async def cut(self, session: AsyncSession, verdict: Verdict, data: Data, cause: str) -> None:
        """An automated post cut to its brief form: audited, and coordination alerted once.

        "Once" is a row in the fired table keyed by the room, whether it is encrypted and
        who in it is not cleared, written in the same transaction as the cut post: the
        tenth prompt into the same room finds the key and adds no alert, a redo after a
        crash finds it too, and only a change in who is not cleared alerts again."""
        workflow = self.workflow(session)
        await workflow.audit(
            self.own_user_id, "audience.cut", verdict.room_id, cause, _detail(verdict, data)
        )
        uncleared = verdict.not_cleared(data)
        stamp = "|".join([verdict.room_id, str(verdict.encrypted), *uncleared])
        key = hashlib.sha256(stamp.encode()).hexdigest()[:40]
        if not await workflow.store.measures.fire(ALERT_KIND, key, workflow.now):
            return
        log.warning("posts cut to IDs: audience check failed", extra={"room_id": verdict.room_id})
        alert = Reply(
            f"Audience check: posts to {verdict.room_id} are cut to IDs and counts",
            Severity.WARNING,
            lines=(
                *_problems(verdict, data),
                "Remove the members above or give them a role that may read it; "
                "the full posts follow once everyone is cleared.",
            ),
        )
        await self._post(session, f"{ALERT_KIND}/{key}", self.coordination, alert)

    async def warn_unencrypted(self, session: AsyncSession, room_id: str) -> None:
        """At start, in a room that should be encrypted and is not: said once in the room
        (encryption, once on, cannot be turned off, so the warning never goes stale)."""
        workflow = self.workflow(session)
        self.unencrypted.add(room_id)
        log.warning("room is not end-to-end encrypted", extra={"room_id": room_id})
        if not await workflow.store.measures.fire(UNENCRYPTED_KIND, room_id, workflow.now):
            return
        warning = Reply(
            "This room is not end-to-end encrypted",
            Severity.WARNING,
            lines=(
                "Aegis posts only IDs and counts here until it is.",
                "Turn on encryption in the room settings.",
            ),
        )
        await self._post(session, f"{UNENCRYPTED_KIND}/{room_id}", room_id, warning)

    async def _post(self, session: AsyncSession, cause: str, room_id: str, reply: Reply) -> None:
        await outbox.enqueue(
            session,
            txn_id=hashlib.sha256(cause.encode()).hexdigest()[:40],
            room_id=room_id,
            event_type=MESSAGE,
            content=notice(reply),
            now=self.workflow(session).now,
        )


def _detail(verdict: Verdict, data: Data) -> dict[str, Any]:
    return {
        "data": str(data),
        "not_cleared": list(verdict.not_cleared(data)),
        "encrypted": verdict.encrypted,
    }
