"""Filling a gap after downtime: the missed events run oldest first, exactly once each, page
by page, with at most one page of events held in memory however long the gap."""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nio import AsyncClient, Event, RoomMemberEvent, RoomMessagesResponse, RoomMessageText

from bot.pipeline import Pipeline
from bot.sync_loop import SyncLoop
from storage import runtime
from storage.db import Database

ROOM = "!coordination"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


class History:
    """A room's history as /messages serves it: back from a token, `limit` events at a
    time, newest first. Token `t<n>` stands before event n. Every event served is a new
    object, watched through a weak reference."""

    user_id = "@aegis:aegis.test"

    def __init__(self, size: int, joined_at: int | None = None) -> None:
        self.size = size
        self.joined_at = joined_at
        self.served: list[weakref.ref[Event]] = []
        self.fetched: list[str] = []

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.served)

    async def room_messages(
        self, room_id: str, start: str, direction: Any, limit: int
    ) -> RoomMessagesResponse:
        self.fetched.append(start)
        end = int(start[1:])
        begin = max(0, end - limit)
        chunk: list[Event] = []
        for n in reversed(range(begin, end)):
            event = self.event(n)
            self.served.append(weakref.ref(event))
            chunk.append(event)
        return RoomMessagesResponse(room_id, chunk, start, f"t{begin}")

    def event(self, n: int) -> Event:
        fields = {"event_id": f"$e{n}", "origin_server_ts": 1000 + n}
        if n == self.joined_at:
            return RoomMemberEvent.from_dict(
                {
                    **fields,
                    "sender": self.user_id,
                    "state_key": self.user_id,
                    "type": "m.room.member",
                    "content": {"membership": "join"},
                }
            )
        return RoomMessageText.from_dict(
            {
                **fields,
                "sender": "@alice:aegis.test",
                "type": "m.room.message",
                "content": {"msgtype": "m.text", "body": f"message {n}"},
            }
        )


class Recorder:
    """The pipeline's place: notes each event it is given and how many served events were
    alive at that moment."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.handled: list[str] = []
        self.most_alive = 0
        self.fetches_before_first = 0
        self.clock = SimpleNamespace(now=lambda: NOW)

    async def handle(self, room_id: str, event: Event) -> bool:
        if not self.handled:
            self.fetches_before_first = len(self.history.fetched)
        self.handled.append(event.event_id)
        self.most_alive = max(self.most_alive, self.history.alive())
        return False


def limited_sync(prev_batch: str) -> Any:
    timeline = SimpleNamespace(events=[], limited=True, prev_batch=prev_batch)
    return SimpleNamespace(
        rooms=SimpleNamespace(join={ROOM: SimpleNamespace(timeline=timeline)}, invite={})
    )


def sync_loop(database: Database, history: History) -> tuple[SyncLoop, Recorder]:
    recorder = Recorder(history)
    loop = SyncLoop(
        cast(AsyncClient, history),
        database,
        cast(Pipeline, recorder),
        asyncio.Event(),
        asyncio.Event(),
        asyncio.Event(),
    )
    return loop, recorder


# The walk's stop (an event marked handled) is a query like any other: one backend will do.
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE
async def test_a_long_gap_runs_oldest_first_one_page_at_a_time(database: Database) -> None:
    """1,050 events in the room; the bot had handled up to event 19 before it went down."""
    history = History(1050)
    async with database.transaction() as session:
        await runtime.mark_seen(session, [("$e19", ROOM)], NOW)
    loop, recorder = sync_loop(database, history)
    loop.joins = {ROOM: 0}

    seen = await loop._handle(limited_sync("t1050"))

    assert recorder.handled == [f"$e{n}" for n in range(20, 1050)]
    assert len(seen) == 1030
    # Pages of 100: never more than one held, however long the gap.
    assert recorder.most_alive <= 100, recorder.most_alive
    assert history.alive() == 0
    # Walking back reaches the oldest page before anything runs; from then on, each newer
    # page is fetched when its turn comes.
    assert recorder.fetches_before_first == 11
    assert len(history.fetched) == 11 + 10


@SQLITE
async def test_a_room_joined_during_the_gap_runs_what_follows_the_join(
    database: Database,
) -> None:
    """The bot joined at event 130 of 450, and the sync only shows the last ones: what
    was said after the join runs, in order, and the join point is the join's time."""
    history = History(450, joined_at=130)
    loop, recorder = sync_loop(database, history)

    await loop._handle(limited_sync("t450"))

    assert recorder.handled == [f"$e{n}" for n in range(131, 450)]
    assert recorder.most_alive <= 100
    assert loop.joins == {ROOM: 1130}
    async with database.transaction() as session:
        assert await runtime.join_points(session) == {ROOM: 1130}
