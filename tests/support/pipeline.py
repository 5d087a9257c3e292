"""The bot's pipeline without a homeserver, for unit tests of what one event does: a fixed
clock, the test module's own commands beside the core ones, and a fake room state for the
audience check."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from nio import MegolmEvent

from bot.audience import Audience
from bot.pipeline import Pipeline, Rooms
from commands import Dispatcher, Registry, core
from commands.replies import RoomKey
from storage.db import Database
from tests.support.rooms import FakeRoom, make_audience
from workflow import AccessPolicy, Policy, RuntimeInfo

INFO = RuntimeInfo("test", datetime(2026, 11, 28, tzinfo=UTC))


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def _no_keys(_event: MegolmEvent) -> None:
    return None


def pipeline_for(
    db: Database,
    module: str,
    access: AccessPolicy,
    rooms: dict[RoomKey, str],
    state: dict[str, FakeRoom],
    own_user_id: str,
    request_keys: Callable[[MegolmEvent], Awaitable[None]] = _no_keys,
    audience: Audience | None = None,
) -> Pipeline:
    """`module` (a test's `__name__`) declares the extra commands; `state` is what nio would
    know of each room (members, encryption), read by `audience` (one over `state` unless a
    test shares its own)."""
    return Pipeline(
        db=db,
        dispatcher=Dispatcher(Registry.from_modules(core, sys.modules[module]), "!", 4096),
        access=access,
        info=INFO,
        policy=Policy(),
        clock=FixedClock(),
        rooms=Rooms(dict(rooms)),
        own_user_id=own_user_id,
        prefix="!",
        tz=ZoneInfo("Europe/Brussels"),
        wake_sender=lambda: None,
        request_keys=request_keys,
        audience=audience
        or make_audience(
            access, state, own_user_id, rooms[RoomKey.COORDINATION], FixedClock(), INFO
        ),
    )
