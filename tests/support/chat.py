"""Commands through the real dispatcher, workflow and database, without a homeserver: fast
enough for hundreds of cases, while the end-to-end tests prove the Matrix wiring."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from commands import Context, Dispatcher, Reply, registry
from config import Role
from storage.db import Database
from storage.store import Store
from workflow import AccessPolicy, Policy, RuntimeInfo, Workflow

BRUSSELS = ZoneInfo("Europe/Brussels")
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday


class Chat:
    def __init__(self, db: Database, roles: dict[str, set[Role]], now: datetime = START) -> None:
        self.db = db
        self.now = now
        self.access = AccessPolicy(
            roles={user: frozenset(r) for user, r in roles.items()},
            allowed_servers=frozenset(),
            home_server="aegis.test",
        )
        self.dispatcher = Dispatcher(registry, "!", 4096)
        self._events = itertools.count(1)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    async def say(self, user: str, text: str, room: str = "!coordination") -> Reply:
        async with self.db.transaction() as session:
            workflow = Workflow(
                Store(session),
                self.now,
                self.access,
                RuntimeInfo("test", START),
                Policy(timezone=BRUSSELS),
            )
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
            return await self.dispatcher.dispatch(text, ctx)


def text_of(reply: Reply) -> str:
    """Everything a reader sees, for assertions on content."""
    parts = [reply.title, *reply.lines, *(f"{k}: {v}" for k, v in reply.fields)]
    if reply.code:
        parts.append(reply.code)
    return "\n".join(parts)
