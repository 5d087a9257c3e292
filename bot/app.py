"""Wiring: settings in, a running bot out, and a clean stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nio import AsyncClient, MegolmEvent, RoomResolveAliasResponse

import bot
from bot.backoff import Backoff
from bot.calendar_feed import CalendarFeed
from bot.login import login, make_client
from bot.pipeline import Pipeline, Rooms
from bot.reconcile import reconcile_prompts
from bot.scheduler import Scheduler
from bot.sender import Sender
from bot.sync_loop import SyncLoop
from commands import Dispatcher, registry
from commands.replies import RoomKey
from config import Settings
from storage.db import Database
from workflow import AccessPolicy, Policy, RuntimeInfo
from workflow.clock import Clock, SystemClock
from workflow.meetings import meeting_specs

log = logging.getLogger(__name__)


def access_policy(settings: Settings) -> AccessPolicy:
    return AccessPolicy(
        roles={user: frozenset(roles) for user, roles in settings.roles.items()},
        allowed_servers=frozenset(settings.allowed_servers),
        home_server=settings.matrix.user_id.partition(":")[2],
    )


async def resolve_rooms(client: AsyncClient, settings: Settings, stop: asyncio.Event) -> Rooms:
    """Aliases become room IDs once at start; the homeserver may still be coming up."""
    by_key: dict[RoomKey, str] = {}
    backoff = Backoff(first=1, cap=30)
    for key in RoomKey:
        ref = getattr(settings.rooms, key.value)
        while not ref.startswith("!") and not stop.is_set():
            answer = await client.room_resolve_alias(ref)
            if isinstance(answer, RoomResolveAliasResponse):
                ref = answer.room_id
            else:
                log.warning("cannot resolve %s yet: %s", ref, answer)
                await backoff.wait(stop)
        by_key[key] = ref
    return Rooms(by_key)


def policy(settings: Settings) -> Policy:
    approval = settings.approval
    return Policy(
        review_days=settings.threats.review_days,
        timezone=ZoneInfo(settings.bot.timezone),
        quorum=approval.quorum,
        nudge_after=approval.nudge_after,
        expire_after=approval.expire_after,
        urgent_role=approval.urgent_role,
        end_warning=timedelta(days=settings.measures.end_warning_days),
        meetings=meeting_specs(settings.meetings),
    )


class Aegis:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stop = asyncio.Event()
        self.db = Database(settings.database.url)
        self.client = make_client(settings.matrix)
        self.sender = Sender(self.client, self.db, self.clock, self.stop)
        self.started = asyncio.Event()  # set once the first sync is handled
        self.scheduler: Scheduler | None = None
        self.calendar: CalendarFeed | None = None

    async def run(self) -> None:
        await self.db.migrate()
        backoff = Backoff(first=1, cap=60)
        while not self.stop.is_set():
            try:
                await login(self.client, self.settings.matrix)
                break
            except (TimeoutError, OSError, ConnectionError) as exc:
                log.warning("homeserver unreachable at start: %r", exc)
                await backoff.wait(self.stop)
        rooms = await resolve_rooms(self.client, self.settings, self.stop)
        pipeline = Pipeline(
            db=self.db,
            dispatcher=Dispatcher(
                registry, self.settings.bot.prefix, self.settings.bot.max_command_bytes
            ),
            access=access_policy(self.settings),
            info=RuntimeInfo(bot.__version__, datetime.now(UTC)),
            policy=policy(self.settings),
            clock=self.clock,
            rooms=rooms,
            own_user_id=self.settings.matrix.user_id,
            prefix=self.settings.bot.prefix,
            tz=ZoneInfo(self.settings.bot.timezone),
            wake_sender=self.sender.wake,
            request_keys=self._request_keys,
        )
        http = self.settings.http
        if http.listen and http.token:
            self.calendar = CalendarFeed(self.db, pipeline.workflow, http.token.get_secret_value())
            await self.calendar.start(http.listen)
        sync = SyncLoop(self.client, self.db, pipeline, self.stop, self.started)
        sync_task = asyncio.create_task(sync.run(), name="sync")
        # Sending needs the room list and keys that only the first sync brings.
        ready = asyncio.create_task(self.started.wait())
        await asyncio.wait({sync_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        send_task = asyncio.create_task(self.sender.run(), name="sender")
        self.scheduler = Scheduler(pipeline, self.stop)
        tasks = {sync_task, send_task, asyncio.create_task(self.scheduler.run(), name="scheduler")}
        if self.started.is_set():
            try:
                await reconcile_prompts(self.client, pipeline)
            except Exception:
                # The sync loop still delivers what happened while the bot was away; the
                # read-back is a second net, never a reason not to run.
                log.exception("reconciling pending prompts failed; continuing")
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.calendar is not None:
                await self.calendar.stop()
            await self.client.close()
            await self.db.close()

    async def _request_keys(self, event: MegolmEvent) -> None:
        try:
            await self.client.request_room_key(event)
        except Exception as exc:  # a duplicate request raises; the notice already went out
            log.info("key request not sent: %r", exc, extra={"event_id": event.event_id})

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
