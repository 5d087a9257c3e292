"""Commands through the real dispatcher, workflow and database, without a homeserver: fast
enough for hundreds of cases, while the end-to-end tests prove the Matrix wiring."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from commands import Context, Dispatcher, Reply, registry
from commands.dispatcher import Dispatched
from config import Role
from storage import outbox
from storage.db import Database
from storage.store import Store
from workflow import AccessPolicy, Policy, RuntimeInfo, Workflow
from workflow.approvals import ReactionResult

BRUSSELS = ZoneInfo("Europe/Brussels")
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday


class Chat:
    def __init__(
        self,
        db: Database,
        roles: dict[str, set[Role]],
        now: datetime = START,
        policy: Policy | None = None,
    ) -> None:
        self.db = db
        self.now = now
        self.policy = policy or Policy(timezone=BRUSSELS)
        self.access = AccessPolicy(
            roles={user: frozenset(r) for user, r in roles.items()},
            allowed_servers=frozenset(),
            home_server="aegis.test",
        )
        self.dispatcher = Dispatcher(registry, "!", 4096)
        self._events = itertools.count(1)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @asynccontextmanager
    async def workflow(self) -> AsyncIterator[Workflow]:
        async with self.db.transaction() as session:
            yield Workflow(
                Store(session), self.now, self.access, RuntimeInfo("test", START), self.policy
            )

    async def say(self, user: str, text: str, room: str = "!coordination") -> Reply:
        return (await self.run(user, text, room)).reply

    async def run(self, user: str, text: str, room: str = "!coordination") -> Dispatched:
        """`say`, also telling which command it was and how it ended (ok, refused, ...)."""
        async with self.workflow() as workflow:
            ctx = Context(
                actor=user,
                roles=await workflow.roles_of(user),
                room_id=room,
                event_id=f"$event{next(self._events)}",
                now=self.now,
                tz=BRUSSELS,
                prefix="!",
                workflow=workflow,
            )
            return await self.dispatcher.run(text, ctx)

    async def posted(self, ref: str, event_id: str, room: str = "!approvals") -> None:
        """What the sender does once a named message is out: its event ID is on record."""
        async with self.db.transaction() as session:
            await outbox.enqueue(
                session,
                txn_id=f"t-{event_id}",
                room_id=room,
                event_type="m.room.message",
                content={},
                now=self.now,
                ref=ref,
            )
            [pending] = [m for m in await outbox.pending(session) if m.txn_id == f"t-{event_id}"]
            await outbox.mark_sent(session, pending.id, event_id, self.now)

    async def react(
        self,
        user: str,
        target: str,
        key: str = "✅",
        own: bool = False,
        event_id: str = "",
        room: str = "!approvals",
        relation_matches: bool = True,
    ) -> ReactionResult:
        """A reaction seen in `room` (where `posted` puts named messages by default)."""
        async with self.workflow() as workflow:
            event_id = event_id or f"$reaction{next(self._events)}"
            return await workflow.approvals.react(
                user,
                event_id,
                target,
                key,
                own,
                room_id=room,
                relation_matches=relation_matches,
            )

    async def unreact(self, user: str, reaction_event_id: str, room: str = "!approvals") -> None:
        """`user` redacts the reaction, in `room`."""
        async with self.workflow() as workflow:
            await workflow.approvals.unreact(
                user, f"$redaction{next(self._events)}", reaction_event_id, room_id=room
            )

    async def rationale(
        self,
        user: str,
        root: str,
        text: str,
        room: str = "!approvals",
        relation_matches: bool = True,
    ) -> bool:
        """A thread reply under `root`; True if it was kept as the rationale."""
        async with self.workflow() as workflow:
            kept = await workflow.approvals.rationale(
                user,
                f"$thread{next(self._events)}",
                root,
                text,
                room_id=room,
                relation_matches=relation_matches,
            )
        return kept is not None

    async def tick(self) -> list[object]:
        """One scheduler pass at the chat's current time: what took effect."""
        async with self.workflow() as workflow:
            due = await workflow.schedule.due()
        done = []
        for step in due:
            async with self.workflow() as workflow:
                outcome = await workflow.schedule.run(step)
            if outcome is not None:
                done.append(outcome)
        return done


def text_of(reply: Reply) -> str:
    """Everything a reader sees, for assertions on content."""
    parts = [reply.title, *reply.lines, *(f"{k}: {v}" for k, v in reply.fields)]
    for group in reply.groups:
        parts += [group.heading, *group.lines]
    if reply.code:
        parts.append(reply.code)
    return "\n".join(parts)
