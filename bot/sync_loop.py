"""The inbound path: sync, fill gaps, hand each event to the pipeline, then store the token.

Unlike nio's sync_forever, the token is stored only after every event of the response has
been committed, and a `limited` timeline is paginated back to the last handled event, so no
command sent while the bot was away is skipped."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nio import (
    AsyncClient,
    Event,
    InviteMemberEvent,
    MessageDirection,
    RoomMemberEvent,
    RoomMessagesResponse,
    SyncResponse,
)

from bot.backoff import Backoff, unless_stopped
from bot.direct import is_direct_invite
from bot.guard import MembershipSweep
from bot.health import SyncStatus
from bot.pipeline import INFRASTRUCTURE_ERRORS, Pipeline
from storage import runtime
from storage.db import Database

log = logging.getLogger(__name__)

SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
}
# A gap larger than this is history nobody expects the bot to replay.
MAX_BACKFILL = 5000
# Events a backfill asks for at once, and at most holds in memory.
BACKFILL_PAGE = 100
KEEP_MARKS = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)


def first_sync_filter() -> dict[str, Any]:
    """Synapse caches a sync answer for minutes, keyed on the whole request. A fresh install
    that repeated an earlier install's initial request would get that old snapshot, set its
    join point too early, and run everything since as if it were new. Excluding an account
    data type that never exists makes each initial request unique without changing what it
    returns (a random timeout did the same, but two installs drew the same one)."""
    return {**SYNC_FILTER, "account_data": {"not_types": [f"aegis.first-sync.{uuid.uuid4()}"]}}


class Interrupted(Exception):
    """The bot stops in the middle of a gap: the sync's token must not be stored, so the
    next start fills the gap again (what ran meanwhile is skipped as handled)."""


@dataclass
class Gap:
    """What a walk back from a gap found. Pages come newest first and must run oldest first,
    so the walk keeps only the events of the page it reached last (the oldest) and, of the
    newer ones, the token each was fetched from: at most one page is held at a time."""

    newer: list[str] = field(default_factory=list)
    """Tokens of the pages newer than the oldest, newest first."""
    oldest: list[Event] = field(default_factory=list)
    """The missed events of the oldest page, oldest first."""
    token: str | None = None
    count: int = 0
    own_join: int | None = None
    """The server time of the bot's own join, if the walk reached it."""

    def passed(self, token: str, missed: list[Event]) -> None:
        if self.token is not None:
            self.newer.append(self.token)
        self.token = token
        self.oldest = missed[::-1]
        self.count += len(missed)

    def take_oldest(self) -> list[Event]:
        oldest, self.oldest = self.oldest, []
        return oldest


class SyncLoop:
    def __init__(
        self,
        client: AsyncClient,
        db: Database,
        pipeline: Pipeline,
        stop: asyncio.Event,
        connected: asyncio.Event,
        started: asyncio.Event,
        status: SyncStatus | None = None,
        sweep: MembershipSweep | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.pipeline = pipeline
        self.stop = stop
        self.joins: dict[str, int] = {}
        self.connected = connected
        self.started = started
        self.status = status or SyncStatus()
        self.sweep = sweep
        self._last_prune: datetime | None = None

    async def run(self) -> None:
        async with self.db.transaction() as session:
            token = await runtime.get_cursor(session)
            self.joins = await runtime.join_points(session)
        backoff = Backoff(first=1, cap=15)
        while not self.stop.is_set():
            try:
                response = await unless_stopped(
                    self.client.sync(
                        timeout=30000,
                        since=token,
                        sync_filter=first_sync_filter() if token is None else SYNC_FILTER,
                        # Full state on each process's first sync: nio keeps no room list
                        # across restarts, and cannot send into a room it does not know.
                        full_state=token is None or not self.started.is_set(),
                    ),
                    self.stop,
                )
            except (TimeoutError, OSError, ConnectionError) as exc:
                log.warning("sync failed: %r", exc)
                await backoff.wait(self.stop)
                continue
            if response is None:
                return
            if not isinstance(response, SyncResponse):
                log.warning("sync refused: %s", response)
                await backoff.wait(self.stop)
                continue
            await self._crypto_housekeeping()
            self.connected.set()
            while not self.stop.is_set():
                try:
                    seen: list[tuple[str, str]] = []
                    if token is None:
                        await self._first_start(response)
                    else:
                        seen = await self._handle(response)
                    async with self.db.transaction() as session:
                        await runtime.mark_seen(session, seen, self.pipeline.clock.now())
                        await runtime.set_cursor(session, response.next_batch)
                    break
                except Interrupted:
                    return
                except INFRASTRUCTURE_ERRORS as exc:
                    # Retry the same response: the events already committed are skipped.
                    log.warning("database unavailable while handling a sync: %r", exc)
                    await backoff.wait(self.stop)
            else:
                return
            token = response.next_batch
            backoff.reset()
            self.started.set()
            self.status.mark()
            await self._sweep()
            await self._prune_marks()

    async def _sweep(self) -> None:
        """Members who lost their clearance are removed; a failure is retried next sync,
        since the roles version it failed on is not taken as checked."""
        if self.sweep is None:
            return
        try:
            await self.sweep.sweep()
        except Exception as exc:
            log.warning("membership sweep failed; retrying after the next sync: %r", exc)

    async def _prune_marks(self) -> None:
        """Handled-event marks only stop replays and gap pagination; after a month neither
        can reach an event any more, so the table is kept from growing without bound."""
        now = self.pipeline.clock.now()
        if self._last_prune and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            async with self.db.transaction() as session:
                await runtime.forget_handled_before(session, now - KEEP_MARKS)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("could not prune handled-event marks: %r", exc)

    async def _crypto_housekeeping(self) -> None:
        """What sync_forever does between syncs: key uploads, queries, claims, to-device."""
        try:
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
            await self.client.send_to_device_messages()
        except Exception as exc:
            log.warning("key maintenance failed, will retry next sync: %r", exc)

    async def _first_start(self, response: SyncResponse) -> None:
        """Everything already in the rooms is history: record where the bot starts, run none."""
        async with self.db.transaction() as session:
            for room_id, info in response.rooms.join.items():
                # The server's clock, not ours: a skewed bot clock must not skip new commands.
                stamps = [e.server_timestamp for e in info.timeline.events]
                joined = max(stamps) + 1 if stamps else int(time.time() * 1000)
                await runtime.record_join(session, room_id, joined)
                self.joins.setdefault(room_id, joined)
        await self._handle_invites(response)
        log.info(
            "first start: the history of %d joined rooms is not executed", len(response.rooms.join)
        )

    async def _handle(self, response: SyncResponse) -> list[tuple[str, str]]:
        """Runs every new event; returns (event ID, room ID) of those that asked for nothing,
        to be marked with the token (the marks are where a later gap's pagination stops)."""
        seen: list[tuple[str, str]] = []
        for room_id, info in response.rooms.join.items():
            events = list(info.timeline.events)
            if room_id not in self.joins:
                events = await self._since_own_join(room_id, events, info.timeline, seen)
            elif info.timeline.limited:
                gap = await self._walk_back(room_id, info.timeline.prev_batch)
                await self._replay(room_id, gap, seen)
            await self._run(room_id, events, seen)
        await self._handle_invites(response)
        return seen

    async def _run(self, room_id: str, events: list[Event], seen: list[tuple[str, str]]) -> None:
        joined = self.joins[room_id]
        for event in events:
            if event.server_timestamp >= joined and not await self.pipeline.handle(room_id, event):
                seen.append((event.event_id, room_id))

    def _is_own_join(self, event: Event) -> bool:
        return (
            isinstance(event, RoomMemberEvent)
            and event.state_key == self.client.user_id
            and event.membership == "join"
        )

    async def _since_own_join(
        self, room_id: str, events: list[Event], timeline: Any, seen: list[tuple[str, str]]
    ) -> list[Event]:
        """A room joined since the last sync: only what follows the bot's own join counts.
        Runs what a gap holds after the join; returns the timeline's events that count."""
        gap = None
        if timeline.limited and not any(self._is_own_join(e) for e in events):
            gap = await self._walk_back(room_id, timeline.prev_batch)
        joined = int(time.time() * 1000)
        if gap is not None and gap.own_join is not None:
            joined = gap.own_join
        else:
            for index, event in enumerate(events):
                if self._is_own_join(event):
                    joined = event.server_timestamp
                    events = events[index + 1 :]
                    break
            else:
                events = []
        async with self.db.transaction() as session:
            await runtime.record_join(session, room_id, joined)
        self.joins[room_id] = joined
        if gap is not None and gap.own_join is not None:
            await self._replay(room_id, gap, seen)
        return events

    async def _page(self, room_id: str, token: str) -> RoomMessagesResponse:
        """One page back from `token` (its chunk newest first, its end the token before
        it), retried until the homeserver answers. Raises Interrupted if the bot stops."""
        backoff = Backoff(first=1, cap=30)
        while True:
            page = await unless_stopped(
                self.client.room_messages(
                    room_id, start=token, direction=MessageDirection.back, limit=BACKFILL_PAGE
                ),
                self.stop,
            )
            if page is None:
                raise Interrupted
            if isinstance(page, RoomMessagesResponse):
                return page
            log.warning("backfill page refused: %s", page, extra={"room_id": room_id})
            await backoff.wait(self.stop)

    async def _walk_back(self, room_id: str, start: str | None) -> Gap:
        """Pages back from the gap until an event already handled, the bot's own join, or
        the join point, holding one page at a time: what it keeps of the pages it passed is
        their tokens, to fetch them again in order (see Gap)."""
        gap = Gap()
        joined = self.joins.get(room_id, 0)
        token = start
        while token and gap.count < MAX_BACKFILL:
            page = await self._page(room_id, token)
            async with self.db.transaction() as session:
                handled = await runtime.handled_among(session, [e.event_id for e in page.chunk])
            missed: list[Event] = []
            next_token = page.end if page.chunk else None
            for event in page.chunk:
                if self._is_own_join(event):
                    gap.own_join = event.server_timestamp
                if (
                    event.event_id in handled
                    or self._is_own_join(event)
                    or event.server_timestamp < joined
                ):
                    next_token = None
                    break
                missed.append(event)
            if missed:
                gap.passed(token, missed)
            token = next_token
        if gap.count >= MAX_BACKFILL:
            log.error(
                "gap larger than %d events; older ones skipped",
                MAX_BACKFILL,
                extra={"room_id": room_id},
            )
        return gap

    async def _replay(self, room_id: str, gap: Gap, seen: list[tuple[str, str]]) -> None:
        """Runs a gap's events oldest first, one page at a time: the oldest page the walk
        still holds, then each newer page fetched again from its token."""
        await self._run(room_id, gap.take_oldest(), seen)
        for token in reversed(gap.newer):
            page = await self._page(room_id, token)
            await self._run(room_id, page.chunk[::-1], seen)
        log.info("backfilled %d missed events", gap.count, extra={"room_id": room_id})

    async def _handle_invites(self, response: SyncResponse) -> None:
        for room_id, info in response.rooms.invite.items():
            inviter = next(
                (
                    e.sender
                    for e in info.invite_state
                    if isinstance(e, InviteMemberEvent)
                    and e.state_key == self.client.user_id
                    and e.membership == "invite"
                ),
                None,
            )
            direct = is_direct_invite(info.invite_state, self.client.user_id)
            await self._answer_invite(room_id, inviter or "", direct)

    async def _answer_invite(self, room_id: str, inviter: str, direct: bool) -> None:
        """Configured rooms and, from a user with a role, direct chats are joined. A user
        without a role who opens a direct chat is told where Aegis works: the bot joins to
        say so, and leaves once it is said (refused and told once, whatever the retries)."""
        access = self.pipeline.access
        turn_away = False
        async with self.db.transaction() as session:
            workflow = self.pipeline.workflow(session)
            if not access.server_allowed(inviter):
                why = "inviter's server is not allowed"
            elif not await workflow.roles_of(inviter):
                why = "inviter has no role"
                turn_away = direct
            elif not self.pipeline.rooms.joins(room_id) and not direct:
                why = "room is not configured"
            else:
                why = ""
            first = not turn_away or await runtime.claim_event(
                session, f"turn-away:{room_id}", room_id, workflow.now
            )
            if why and first:
                extra = {"room_id": room_id, "sender": inviter}
                log.warning("declining invite: %s", why, extra=extra)
                await workflow.refuse(inviter, "invite", room_id, "", why)
                if turn_away:
                    await self.pipeline.turn_away(session, room_id, inviter)
        if turn_away:
            self.pipeline.wake_sender()
        if why and not turn_away:
            await self.client.room_leave(room_id)
        else:
            result = await self.client.join(room_id)
            log.info(
                "joined on invite from %s: %s",
                inviter,
                type(result).__name__,
                extra={"room_id": room_id, "sender": inviter},
            )
