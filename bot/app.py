"""Wiring: settings in, a running bot out, and a clean stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nio import AsyncClient, MegolmEvent, RoomResolveAliasResponse
from sqlalchemy.ext.asyncio import AsyncSession

import bot
from bot import at_rest
from bot.anchor import REF_PREFIX, Anchor
from bot.audience import Audience
from bot.backoff import Backoff, sleep_unless_stopped
from bot.calendar_feed import CalendarFeed
from bot.clear_relations import keep_clear_relations
from bot.guard import MembershipSweep
from bot.health import Health, SyncStatus
from bot.intake.api import IntakeApi
from bot.intake.form import ReportForm
from bot.intake.service import Intake
from bot.login import login, make_client
from bot.metrics import Metrics
from bot.pipeline import INFRASTRUCTURE_ERRORS, Pipeline, Rooms
from bot.reconcile import reconcile_prompts
from bot.scheduler import Scheduler
from bot.sender import ROOM_POLL, ROOM_WAIT, Sender
from bot.sync_loop import SyncLoop
from bot.web import Routes, WebServer
from bot.webhooks import WebhookPolicy, WebhookSender
from commands import Dispatcher, registry
from commands.replies import RoomKey
from config import Settings, audit_key
from config.key_files import store_key
from storage import audit, outbox
from storage.db import Database
from storage.leader import Leadership, LeadershipLost
from storage.store import Store
from workflow import AccessPolicy, Policy, RuntimeInfo, Workflow
from workflow.access import Data
from workflow.anchoring import AnchorPolicy
from workflow.clock import Clock, SystemClock
from workflow.early_warning import EarlyWarningPolicy
from workflow.meetings import meeting_specs

log = logging.getLogger(__name__)

# How long a stopping bot waits for its last audit checkpoint to be sent.
SHUTDOWN_FLUSH = 10.0


def access_policy(settings: Settings) -> AccessPolicy:
    return AccessPolicy(
        roles={user: frozenset(roles) for user, roles in settings.roles.items()},
        allowed_servers=frozenset(settings.allowed_servers),
        home_server=settings.matrix.user_id.partition(":")[2],
        read={Data(kind): frozenset(roles) for kind, roles in settings.access.read.items()},
        service_accounts=frozenset(settings.access.service_accounts),
        remove_uncleared=settings.access.remove_uncleared,
    )


async def resolve_rooms(client: AsyncClient, settings: Settings, stop: asyncio.Event) -> Rooms:
    """Aliases become room IDs once at start; the homeserver may still be coming up."""
    by_key = {
        key: await resolve_room(client, getattr(settings.rooms, key.value), stop) for key in RoomKey
    }
    audit = settings.rooms.audit
    return Rooms(by_key, None if audit is None else await resolve_room(client, audit, stop))


async def resolve_room(client: AsyncClient, ref: str, stop: asyncio.Event) -> str:
    backoff = Backoff(first=1, cap=30)
    while not ref.startswith("!") and not stop.is_set():
        answer = await client.room_resolve_alias(ref)
        if isinstance(answer, RoomResolveAliasResponse):
            ref = answer.room_id
        else:
            log.warning("cannot resolve %s yet: %s", ref, answer)
            await backoff.wait(stop)
    return ref


def open_database(settings: Settings) -> Database:
    """The database as every process that writes audit entries opens it: the bot and the
    host's tools. The audit key is generated on a first run without one
    (config/audit_key.py); a bad one stops here."""
    return Database(
        settings.database.url,
        audit_key(settings, create=True),
        migrate_url=settings.database.migrate_url,
    )


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
        meetings=meeting_specs(settings.meetings, settings.rooms.model_dump()),
        mentions=settings.mentions.roles(),
        early_warning=EarlyWarningPolicy(
            window=settings.early_warning.correlation_window,
            radius_m=settings.early_warning.radius_m,
            pattern_threshold=settings.early_warning.pattern_threshold,
            reports_per_hour=settings.early_warning.reports_per_hour,
        ),
    )


async def _until(event: asyncio.Event, task: asyncio.Task[None]) -> bool:
    """Waits for `event`, or for `task` to end first; its failure is raised with the others'."""
    waiter = asyncio.create_task(event.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    return event.is_set()


class Aegis:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stop = asyncio.Event()
        self.store_key = store_key(settings.matrix)  # first: an unusable key file stops here
        self.db = open_database(settings)
        if self.store_key.generated:
            log.warning(
                "matrix.store_key is not set: generated a random key for the E2EE store in %s "
                "(mode 0600). Back it up with the store: without it the store cannot be "
                "opened. Or set matrix.store_key (AEGIS_MATRIX__STORE_KEY).",
                self.store_key.source,
            )
        self.client = make_client(settings.matrix, self.store_key.value)
        self.sync_status = SyncStatus()
        self.metrics = Metrics(self.sync_status.lag, self.clock)
        self.metrics.watch_rate_limits(self.client)
        self.connected = asyncio.Event()  # set once the first sync brought the rooms and keys
        self.started = asyncio.Event()  # set once the first sync is handled
        self.scheduler: Scheduler | None = None
        self.web: WebServer | None = None
        self.audience: Audience | None = None  # once the rooms are resolved
        self.access = access_policy(settings)
        self.info = RuntimeInfo(bot.__version__, datetime.now(UTC))
        self.policy = policy(settings)
        self.intake = Intake(
            self.db,
            self.workflow,
            ZoneInfo(settings.bot.timezone),
            settings.http.base_url,
            on_report=self.metrics.report_received,
        )

    async def run(self) -> None:
        """Standby until this process holds the leader lock (storage/leader.py), then active.
        Migrations, the HTTP server, login (which opens the E2EE store) and sync only ever run
        in the one active instance. Raises LeadershipLost if another instance took over."""
        leadership = Leadership(self.settings.database.url)
        try:
            if not await leadership.acquire(self.stop):
                await self.client.close()
                await self.db.close()
                return
            watch = asyncio.create_task(leadership.watch(self.stop), name="leadership")
            try:
                await self._run_active()
            finally:
                self.stop.set()
                await asyncio.gather(watch, return_exceptions=True)
        finally:
            await leadership.release()
        if leadership.lost:
            raise LeadershipLost(leadership.where)

    async def _run_active(self) -> None:
        await asyncio.to_thread(at_rest.prepare, self.settings, self.store_key)
        await self.db.migrate()
        # Refuses a key that did not sign the chain; carries an unkeyed chain over.
        async with self.db.transaction() as session:
            await audit.seal(session, self.clock.now())
        # Up before login: health answers, and partners' reports are taken in and kept
        # while the homeserver is unreachable.
        parts: list[Routes] = [
            Health(self.db, self.sync_status, self.metrics, self._unencrypted_rooms)
        ]
        http = self.settings.http
        if http.token:
            parts.append(CalendarFeed(self.db, self.workflow, http.token.get_secret_value()))
        session_key = http.session_key.get_secret_value() if http.session_key else None
        parts += [
            IntakeApi(self.intake, self.clock.now),
            ReportForm(
                self.intake, session_key, ZoneInfo(self.settings.bot.timezone), self.clock.now
            ),
        ]
        self.web = WebServer(parts)
        await self.web.start(http.listen)
        ew = self.settings.early_warning
        webhooks = WebhookSender(
            self.db,
            self.clock,
            self.stop,
            WebhookPolicy(ew.webhook_attempts, ew.webhook_backoff, ew.webhook_timeout),
        )
        webhook_task = asyncio.create_task(webhooks.run(), name="webhooks")
        backoff = Backoff(first=1, cap=60)
        while not self.stop.is_set():
            try:
                await login(self.client, self.settings.matrix)
                keep_clear_relations(self.client)
                break
            except (TimeoutError, OSError, ConnectionError) as exc:
                log.warning("homeserver unreachable at start: %r", exc)
                await backoff.wait(self.stop)
        rooms = await resolve_rooms(self.client, self.settings, self.stop)
        audience = Audience(
            self.access,
            self.client.rooms.get,
            self.settings.matrix.user_id,
            rooms.by_key[RoomKey.COORDINATION],
            self.workflow,
        )
        self.audience = audience
        sender = Sender(
            self.client,
            self.db,
            self.clock,
            self.stop,
            audience,
            self.metrics,
            timedelta(minutes=self.settings.retention.outbox_grace_minutes),
        )
        schedule_changed = asyncio.Event()
        pipeline = Pipeline(
            db=self.db,
            dispatcher=Dispatcher(
                registry, self.settings.bot.prefix, self.settings.bot.max_command_bytes
            ),
            access=self.access,
            info=self.info,
            policy=self.policy,
            clock=self.clock,
            rooms=rooms,
            own_user_id=self.settings.matrix.user_id,
            prefix=self.settings.bot.prefix,
            tz=ZoneInfo(self.settings.bot.timezone),
            wake_sender=sender.wake,
            request_keys=self._request_keys,
            audience=audience,
            on_command=self.metrics.command_handled,
            wake_scheduler=schedule_changed.set,
        )
        await self.intake.ready(pipeline.enqueue_announcements)
        sync = SyncLoop(
            self.client,
            self.db,
            pipeline,
            self.stop,
            self.connected,
            self.started,
            self.sync_status,
            MembershipSweep(self.client, pipeline),
        )
        sync_task = asyncio.create_task(sync.run(), name="sync")
        # Sending needs the room list and keys that only the first sync brings; it need not
        # wait for that sync's events to be handled, so a backlog is answered as it is read.
        await _until(self.connected, sync_task)
        send_task = asyncio.create_task(sender.run(), name="sender")
        audit_settings = self.settings.audit
        anchor = Anchor(
            self.db,
            rooms.checkpoints,
            AnchorPolicy(
                audit_settings.checkpoint_every,
                timedelta(minutes=audit_settings.checkpoint_minutes),
            ),
            self.clock.now(),
        )
        self.scheduler = Scheduler(
            pipeline, self.stop, self.metrics, schedule_changed, anchor=anchor
        )
        tasks = {
            sync_task,
            send_task,
            webhook_task,
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(
                self._require_encryption(audience, rooms, sender.wake), name="encryption"
            ),
        }
        if await _until(self.started, sync_task):
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
            await self._checkpoint_at_shutdown(anchor, audience)
            if self.web is not None:
                await self.web.stop()
            await self.client.close()
            await self.db.close()

    async def _require_encryption(
        self, audience: Audience, rooms: Rooms, wake_sender: Callable[[], None]
    ) -> None:
        """Every configured room and every dossier room must be end-to-end encrypted. One
        that is not gets a warning at start (and /readyz says so); the audience check keeps
        personal data out of it, at queue time and again before each post.

        On a first start the bot joins its rooms during the first syncs, so the check waits
        (bounded) until the sync has brought every configured room's state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROOM_WAIT
        while not all(self.client.rooms.get(r) for r in rooms.by_key.values()):
            if loop.time() >= deadline:
                log.warning("not every configured room is joined; checking those that are")
                break
            await sleep_unless_stopped(ROOM_POLL, self.stop)
            if self.stop.is_set():
                return
        async with self.db.transaction() as session:
            store = Store(session)
            for room_id, room in self.client.rooms.items():
                if room.encrypted:
                    continue
                if rooms.known(room_id) or await store.dossier_for_room(room_id) is not None:
                    await audience.warn_unencrypted(session, room_id)
        wake_sender()

    async def _checkpoint_at_shutdown(self, anchor: Anchor, audience: Audience) -> None:
        """The head at shutdown is anchored too, so rows removed while the bot was down
        show. The sender has stopped: one of its own drains the outbox until the checkpoint
        is out, or for SHUTDOWN_FLUSH seconds (it is then sent at the next start)."""
        try:
            checkpoint = await anchor.tick(self.clock.now(), closing=True)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("no audit checkpoint at shutdown: database unavailable: %r", exc)
            return
        if checkpoint is None:
            return
        flushed = asyncio.Event()
        sender = Sender(self.client, self.db, self.clock, flushed, audience, self.metrics)
        drain = asyncio.create_task(sender.run(), name="checkpoint")
        try:
            await asyncio.wait_for(self._sent(f"{REF_PREFIX}{checkpoint.seq}"), SHUTDOWN_FLUSH)
        except TimeoutError:
            log.warning("audit checkpoint not sent before shutdown; it goes at the next start")
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("audit checkpoint not confirmed: database unavailable: %r", exc)
        finally:
            flushed.set()
            await drain

    async def _sent(self, ref: str) -> None:
        while True:
            async with self.db.snapshot() as session:
                if await outbox.event_of_ref(session, ref) is not None:
                    return
            await asyncio.sleep(0.1)

    def _unencrypted_rooms(self) -> list[str]:
        return [] if self.audience is None else sorted(self.audience.unencrypted)

    def workflow(self, session: AsyncSession, now: datetime | None = None) -> Workflow:
        """The rules, bound to this transaction and this moment."""
        moment = now or self.clock.now()
        return Workflow(Store(session), moment, self.access, self.info, self.policy)

    async def _request_keys(self, event: MegolmEvent) -> None:
        try:
            await self.client.request_room_key(event)
        except Exception as exc:  # a duplicate request raises; the notice already went out
            extra = {"event_id": event.event_id, "room_id": event.room_id}
            log.info("key request not sent: %r", exc, extra=extra)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
