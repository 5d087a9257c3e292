"""Drains the outbox in order, separately from the sync loop, so a rate-limited send never
delays reading new events.

A row is marked sent only once the homeserver answered with an event ID. If the process dies
between the send and the mark, the resend carries the same transaction ID on the same device,
and the homeserver answers with the original event instead of posting twice. Uploads and
room creation (bot/effects.py) go through the same loop, so they keep the order, the retries
and the permanent-failure policy of plain messages; so do the invites into a dossier room
and the removals of uncleared members, and a purge's redactions (bot/erasure.py).

A closed row's content is dropped `retention.outbox_grace_minutes` after it was sent: the
homeserver has it, and a copy here would outlive every erasure."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import Any

from nio import AsyncClient, ErrorResponse

from bot import effects
from bot.audience import Audience
from bot.backoff import Backoff, sleep_unless_stopped, unless_stopped
from bot.erasure import REASON
from bot.metrics import Metrics
from bot.render import (
    CREATE_ROOM,
    INVITE,
    KICK,
    LEAVE,
    REDACT,
    REDACT_ROOM,
    UPLOAD,
    merged,
    notice,
)
from storage import dossiers, outbox
from storage.db import Database
from workflow.access import Data
from workflow.clock import Clock

log = logging.getLogger(__name__)

# A refusal the homeserver will repeat however often we ask: give up after a few tries so
# one unsendable message does not hold back every reply behind it.
PERMANENT_ATTEMPTS = 5
# How long a message may wait for the sync loop to bring its room (see Sender._await_room).
ROOM_WAIT = 60.0
ROOM_POLL = 0.25
# Rows that are no message: nio need not know their room (nor encrypt for its members).
NOT_MESSAGES = (CREATE_ROOM, INVITE, KICK, LEAVE, REDACT, REDACT_ROOM)
# How often closed rows are checked for content past its grace window.
DROP_EVERY = 60.0


def _permanent(response: object) -> bool:
    if not isinstance(response, ErrorResponse):
        return not isinstance(response, (TimeoutError, OSError, ConnectionError))
    code = str(response.status_code or "")
    return code not in ("M_LIMIT_EXCEEDED", "429") and not code.startswith("5")


class Sender:
    def __init__(
        self,
        client: AsyncClient,
        db: Database,
        clock: Clock,
        stop: asyncio.Event,
        audience: Audience,
        metrics: Metrics | None = None,
        content_grace: timedelta = timedelta(minutes=60),
    ) -> None:
        self.client = client
        self.db = db
        self.clock = clock
        self.stop = stop
        self.audience = audience
        self.metrics = metrics
        self.content_grace = content_grace
        self._dropped_at: float | None = None
        self._wake = asyncio.Event()
        self._marking: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(first=0.5, cap=30)
        try:
            while not self.stop.is_set():
                self._wake.clear()
                try:
                    await self._settle_marks()
                    await self._drop_old_content()
                    async with self.db.snapshot() as session:
                        batch = await outbox.pending(session)
                    for message in batch:
                        if self.stop.is_set():
                            return
                        await self._deliver(message, backoff)
                    backoff.reset()
                except Exception:
                    log.exception("outbox drain failed; retrying")
                    await backoff.wait(self.stop)
                    continue
                if not batch:
                    await self._idle()
        finally:
            await self._settle_marks()

    async def _drop_old_content(self) -> None:
        """At most once a DROP_EVERY: what was posted more than the grace window ago is
        on the homeserver and leaves the outbox (storage/outbox.py drop_content)."""
        loop = asyncio.get_running_loop()
        if self._dropped_at is not None and loop.time() - self._dropped_at < DROP_EVERY:
            return
        self._dropped_at = loop.time()
        async with self.db.transaction() as session:
            dropped = await outbox.drop_content(session, self.clock.now() - self.content_grace)
        if dropped:
            log.info("dropped the content of %d sent messages", dropped)

    def _mark_sent(
        self,
        message: outbox.PendingMessage,
        event_id: str,
        sent: dict[str, Any] | None = None,
    ) -> None:
        """Recorded while the next message is already on its way: the mark is off the
        critical path of a backlog. Should it never commit, the row is sent again under the
        same transaction ID and the homeserver answers with the original event."""

        async def mark() -> None:
            try:
                async with self.db.transaction() as session:
                    now = self.clock.now()
                    if not await outbox.mark_sent(session, message.id, event_id, now, sent):
                        # Purged while on its way: the purge could not know this event.
                        await outbox.enqueue(
                            session,
                            txn_id=f"{message.txn_id}/redact",
                            room_id=message.room_id,
                            event_type=REDACT,
                            content={"event_id": event_id, "reason": REASON},
                            now=now,
                        )
                        self.wake()
            except Exception as exc:
                log.warning(
                    "recording a sent message failed; it will be resent: %r",
                    exc,
                    extra={"room_id": message.room_id, "txn_id": message.txn_id},
                )

        task = asyncio.create_task(mark())
        self._marking.add(task)
        task.add_done_callback(self._marking.discard)

    async def _settle_marks(self) -> None:
        """Before the outbox is read again or a reference resolved, every mark is in."""
        await asyncio.gather(*self._marking)

    async def _idle(self) -> None:
        stop_wait = asyncio.ensure_future(self.stop.wait())
        wake_wait = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {stop_wait, wake_wait}, timeout=5, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop_wait.cancel()
            wake_wait.cancel()

    async def _deliver(self, message: outbox.PendingMessage, backoff: Backoff) -> None:
        """Retries until the homeserver accepts: a reply is never dropped for a transient fault.
        nio itself waits out M_LIMIT_EXCEEDED using the server's retry_after_ms."""
        if message.event_type not in NOT_MESSAGES:
            await self._await_room(message.room_id, _mentioned(message.content))
        screened = await self._screen(message)
        if screened is None:
            return
        resolved = await self._resolve(screened)
        if resolved is None:
            return
        # Sent in another form than queued: the row keeps what was posted, nothing more.
        replaced = resolved.content if screened is not message else None
        message = resolved
        attempts = 0
        while not self.stop.is_set():
            attempts += 1
            response: object
            try:
                response = await unless_stopped(self._attempt(message), self.stop)
                if response is None:
                    return
            except Exception as exc:  # nio raises for local faults too (unknown room, crypto)
                response = exc
            if isinstance(response, effects.Done):
                self._mark_sent(message, response.ref, replaced)
                return
            if _permanent(response) and attempts >= PERMANENT_ATTEMPTS:
                log.error(
                    "giving up on a message after %d attempts: %s",
                    attempts,
                    response,
                    extra={"room_id": message.room_id, "txn_id": message.txn_id},
                )
                async with self.db.transaction() as session:
                    await outbox.mark_failed(session, message.id, str(response), self.clock.now())
                    if message.event_type == CREATE_ROOM:
                        # No room will come of this request: the dossier may ask again.
                        await dossiers.update_fields(
                            session, message.content["dossier_ref"], {"room_requested_at": None}
                        )
                return
            delay = backoff.next_delay()
            log.warning(
                "send failed (%s); retrying in %.1fs",
                response,
                delay,
                extra={"room_id": message.room_id, "txn_id": message.txn_id},
            )
            async with self.db.transaction() as session:
                await outbox.count_attempt(session, message.id)
            if self.metrics is not None:
                self.metrics.send_retried()
            await sleep_unless_stopped(delay, self.stop)

    async def _screen(self, message: outbox.PendingMessage) -> outbox.PendingMessage | None:
        """The audience check again, just before sending: since the row was queued someone
        may have joined or been invited, a role revoked, or the room may have turned out
        unencrypted. A failing answer becomes the withheld notice, a failing automated post
        its brief form (coordination alerted once), a file or later part nothing at all."""
        check = message.audience
        if check is None:
            return message
        data = Data(check["carries"])
        async with self.db.snapshot() as session:
            verdict = await self.audience.verdict(session, message.room_id)
        if verdict.allows(data):
            return message
        content: dict[str, Any] | None
        async with self.db.transaction() as session:
            reply_to = check.get("reply_to")
            if reply_to:
                actor = check.get("actor") or self.audience.own_user_id
                shown = await self.audience.withhold(session, verdict, data, actor, reply_to)
                # The answer's file: its requester is told by the answer's own row.
                content = None
                if not check.get("file"):
                    content = notice(shown, in_reply_to=reply_to, thread_root=check.get("thread"))
                    # What an announcement merged into the answer still posts (its brief).
                    if check.get("keep"):
                        content = merged(content, check["keep"])
            else:
                await self.audience.cut(session, verdict, data, message.txn_id)
                content = check.get("brief")
            if content is None:
                await outbox.withdraw(
                    session, message.id, "withheld: the room may not read it", self.clock.now()
                )
                return None
        return dataclasses.replace(message, content=content, audience=None)

    async def _resolve(self, message: outbox.PendingMessage) -> outbox.PendingMessage | None:
        """Fills in `{"$ref": name}` with the event ID of the message sent under that name.
        The target always comes earlier in the outbox; if it could never be sent, neither
        can this reaction or edit, so the row is closed as failed."""
        names: list[str] = []

        def fill(value: Any, ids: dict[str, str]) -> Any:
            if isinstance(value, dict):
                if set(value) == {"$ref"}:
                    names.append(value["$ref"])
                    return ids.get(value["$ref"], "")
                return {k: fill(v, ids) for k, v in value.items()}
            return value

        fill(message.content, {})
        if not names:
            return message
        await self._settle_marks()
        ids: dict[str, str] = {}
        async with self.db.transaction() as session:
            for name in names:
                found = await outbox.event_of_ref(session, name)
                if found is None:
                    log.error(
                        "target %s was never sent; dropping", name, extra={"txn_id": message.txn_id}
                    )
                    await outbox.mark_failed(
                        session, message.id, f"target {name} never sent", self.clock.now()
                    )
                    return None
                ids[name] = found[1]
        return dataclasses.replace(message, content=fill(message.content, ids))

    async def _attempt(self, message: outbox.PendingMessage) -> effects.Outcome:
        if message.event_type == UPLOAD:
            return await effects.upload(self.client, message)
        if message.event_type == CREATE_ROOM:
            return await effects.create_room(self.client, self.db, self.clock, message)
        if message.event_type == INVITE:
            return await effects.invite(self.client, message)
        if message.event_type == KICK:
            return await effects.kick(self.client, message)
        if message.event_type == LEAVE:
            return await effects.leave(self.client, message)
        if message.event_type == REDACT:
            return await effects.redact(self.client, message)
        if message.event_type == REDACT_ROOM:
            return await effects.redact_room(self.client, message)
        return await effects.send(self.client, message)

    async def _await_room(self, room_id: str, members: list[str]) -> None:
        """nio encrypts only for rooms a sync has brought, and only for the members it knows.
        A room the bot just created may arrive in a sync before its invites do; a message
        sent then would be unreadable for the invitees. So wait (bounded) until the room and
        everyone the message mentions are known; a failed send would also use up attempts
        meant for real refusals."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROOM_WAIT

        def ready() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and all(user in room.users for user in members)

        while not ready() and loop.time() < deadline:
            if self.stop.is_set():
                return
            await sleep_unless_stopped(ROOM_POLL, self.stop)


def _mentioned(content: dict[str, Any]) -> list[str]:
    mentions = content.get("m.mentions")
    users = mentions.get("user_ids", []) if isinstance(mentions, dict) else []
    return [u for u in users if isinstance(u, str)]
