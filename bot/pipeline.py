"""One Matrix event in, its effects and replies out, in a single database transaction.

The handled-event mark, the command's writes and the outbox rows commit together, so a
crash at any point either leaves no trace (the event is redone) or the whole effect (the
event is skipped as already handled)."""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nio import (
    Event,
    MegolmEvent,
    ReactionEvent,
    RedactionEvent,
    RoomMemberEvent,
    RoomMessageText,
)
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audience import Audience
from bot.clear_relations import relation_matches
from bot.direct import DIRECT_COMMANDS, elsewhere, is_direct, turned_away
from bot.edits import already, settled
from bot.render import (
    CREATE_ROOM,
    KICK,
    LEAVE,
    MESSAGE,
    REACTION,
    UPLOAD,
    Targets,
    edit,
    file_request,
    membership_request,
    notice,
    reaction,
    room_request,
)
from bot.rows import Row, merged_row
from bot.throttle import PerSender
from commands import Context, Dispatcher
from commands.dispatcher import UNKNOWN, Dispatched, Outcome
from commands.measure_views import reacted
from commands.membership_views import uncleared_warning
from commands.replies import Announcement, Reply, RoomKey, Severity
from storage import outbox, runtime
from storage.db import Database
from storage.store import Store
from workflow import AccessPolicy, Policy, RuntimeInfo, Workflow
from workflow.clock import Clock
from workflow.membership import Arrival, GuardedRoom, configured_room, dossier_room

log = logging.getLogger(__name__)

# Errors that mean the database is unreachable, not that the command is wrong: the event
# must be retried later, not answered with "internal error".
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, OSError)

_REPLY_FALLBACK = re.compile(r"\A(?:> .*\n)+\n", re.MULTILINE)

UNDECRYPTABLE = Reply(
    "Could not decrypt your message, please resend it.",
    Severity.WARNING,
    lines=("I have asked your devices for the missing key.",),
)


# Told of each command handled for good: its name, outcome and handling time in seconds.
CommandObserver = Callable[[str, Outcome, float], None]


class Handled(enum.Enum):
    DONE = "done"
    FAILED = "failed"  # rolled back, claimed, and (for a command) answered with a reference
    SKIPPED = "skipped"  # handled before, by this process or another


def txn_id(source_event_id: str, index: int) -> str:
    """Stable per cause: a resend after a crash reuses it and the homeserver de-duplicates."""
    return hashlib.sha256(f"{source_event_id}/{index}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Rooms:
    """The configured rooms, resolved to room IDs."""

    by_key: dict[RoomKey, str]
    audit: str | None = None
    """Where the audit trail's checkpoints go (`rooms.audit`); joined, never commanded."""

    def known(self, room_id: str) -> bool:
        return room_id in self.by_key.values()

    def joins(self, room_id: str) -> bool:
        """Rooms the bot accepts an invite to: the configured ones, the audit room too."""
        return self.known(room_id) or room_id == self.audit

    @property
    def checkpoints(self) -> str:
        """The audit room, or coordination when none is configured."""
        return self.audit or self.by_key[RoomKey.COORDINATION]

    def key_of(self, room_id: str) -> RoomKey | None:
        return next((key for key, known in self.by_key.items() if known == room_id), None)


@dataclass
class Pipeline:
    db: Database
    dispatcher: Dispatcher
    access: AccessPolicy
    info: RuntimeInfo
    policy: Policy
    clock: Clock
    rooms: Rooms
    own_user_id: str
    prefix: str
    tz: ZoneInfo
    wake_sender: Callable[[], None]
    request_keys: Callable[[MegolmEvent], Awaitable[None]]
    audience: Audience
    on_command: CommandObserver | None = None
    wake_scheduler: Callable[[], None] = lambda: None
    """Called after an event's effects commit: they may have made a step due sooner."""
    undecryptable_answers: PerSender = dataclasses.field(default_factory=PerSender)
    """"Could not decrypt" is said to a sender once per window, however many events."""

    async def handle(self, room_id: str, event: Event) -> bool:
        """Does what the event asks for, at most once. False for an event that asks for
        nothing (talk, the bot's own posts, commands in unknown rooms): the sync loop marks
        those as seen together with its token, one transaction per sync instead of one each."""
        if isinstance(event, RoomMemberEvent):
            return await self._run_membership(room_id, event)
        command = self._command_text(event)
        edit = None if command is not None else self._edit(event)
        signal = command is None and _is_signal(event, self.own_user_id)
        if signal and await self._known(room_id):
            await self._run_signal(room_id, event)
            return True
        undecryptable = (
            event if isinstance(event, MegolmEvent) and event.sender != self.own_user_id else None
        )
        asks = command is not None or edit is not None or undecryptable
        if asks and not await self._known(room_id):
            log.warning("ignoring event from an unknown room", extra=_ctx(room_id, event))
            return False
        if command is not None:
            await self._run_command(room_id, event, command)
            return True
        if edit is not None:
            await self._run_edit(room_id, event, *edit)
            return True
        if undecryptable is None:
            return False
        now = self.clock.now()
        async with self.db.transaction() as session:
            first = await runtime.claim_event(session, event.event_id, room_id, now)
            answer = first and self.undecryptable_answers.may_answer(event.sender, now)
            if answer:
                await self._enqueue(session, room_id, event.event_id, UNDECRYPTABLE)
        if first:
            await self.request_keys(undecryptable)
        if answer:
            self.undecryptable_answers.answered(event.sender, now)
            self.wake_sender()
        return True

    def workflow(self, session: AsyncSession, now: datetime | None = None) -> Workflow:
        """The rules, bound to this transaction and this moment."""
        moment = now or self.clock.now()
        return Workflow(Store(session), moment, self.access, self.info, self.policy)

    async def _run_signal(self, room_id: str, event: Event) -> None:
        """A reaction, a redaction or a thread reply: votes, acknowledgements, rationales."""

        async def work(session: AsyncSession, workflow: Workflow) -> None:
            announcements = await self._signal(workflow, room_id, event)
            await self.enqueue_announcements(session, event.event_id, announcements)

        await self._once(room_id, event, work, answer_failure=False)

    async def _signal(
        self, workflow: Workflow, room_id: str, event: Event
    ) -> tuple[Announcement, ...]:
        """The room an event was seen in is the homeserver's word, never the event's own
        claim; so is, for an encrypted event, the relation in clear (bot/clear_relations)."""
        if isinstance(event, ReactionEvent):
            own = event.sender == self.own_user_id
            result = await workflow.approvals.react(
                event.sender,
                event.event_id,
                event.reacts_to,
                event.key,
                own,
                room_id=room_id,
                relation_matches=relation_matches(event),
            )
            return reacted(result, self.tz)
        if isinstance(event, RedactionEvent):
            await workflow.approvals.unreact(
                event.sender, event.event_id, event.redacts, room_id=room_id
            )
            return ()
        assert isinstance(event, RoomMessageText)
        root = _relation(event)[1]
        await workflow.approvals.rationale(
            event.sender,
            event.event_id,
            root,
            event.body,
            room_id=room_id,
            relation_matches=relation_matches(event),
        )
        return ()

    async def _run_membership(self, room_id: str, event: RoomMemberEvent) -> bool:
        """An invite or a join: the membership guard's (workflow/membership.py) cue."""
        arrival = _arrival(event)
        if arrival is None or event.state_key == self.own_user_id:
            return False

        async def work(session: AsyncSession, workflow: Workflow) -> None:
            room = await self.guarded_room(workflow, room_id)
            if room is not None:
                await self.guard(
                    session,
                    workflow,
                    room,
                    event.state_key,
                    actor=event.sender,
                    event_id=event.event_id,
                    arrival=arrival,
                    episode=membership_episode(event.event_id, event.source),
                )

        await self._once(room_id, event, work, answer_failure=False)
        return True

    async def guarded_room(self, workflow: Workflow, room_id: str) -> GuardedRoom | None:
        """A configured room or a dossier room, with what the bot posts there."""
        key = self.rooms.key_of(room_id)
        if key is not None:
            return configured_room(room_id, key.value)
        ref = await workflow.dossiers.for_room(room_id)
        return dossier_room(room_id, ref) if ref is not None else None

    async def guard(
        self,
        session: AsyncSession,
        workflow: Workflow,
        room: GuardedRoom,
        user: str,
        *,
        actor: str,
        event_id: str,
        arrival: Arrival,
        episode: str,
    ) -> bool:
        """An uncleared member is audited, named in the room and in coordination, and (from
        a dossier room) removed; all of it once per membership `episode`, however often the
        event is replayed or the member found again after a role change. True if reported."""
        if user == self.own_user_id or await workflow.membership.cleared(user, room):
            return False
        cause = f"uncleared:{episode}"
        if not await runtime.claim_event(session, cause, room.room_id, workflow.now):
            return False
        found = await workflow.membership.uncleared(actor, event_id, user, room, arrival)
        rows: list[Row] = []
        if found.removed:
            reason = "not cleared to read this room's data"
            rows.append(Row(room.room_id, KICK, membership_request(user, reason)))
        rows += await self._announcements_rows(session, cause, uncleared_warning(found))
        await self._write(session, cause, rows)
        log.warning(
            "uncleared member %s", arrival, extra={"room_id": room.room_id, "sender": actor}
        )
        return True

    async def _known(self, room_id: str) -> bool:
        """Configured rooms, the dossier rooms the bot created, and direct chats."""
        if self.rooms.known(room_id) or self._direct(room_id):
            return True
        async with self.db.transaction() as session:
            return await self.workflow(session).dossiers.for_room(room_id) is not None

    def _direct(self, room_id: str) -> bool:
        return not self.rooms.known(room_id) and is_direct(
            self.audience.rooms(room_id), self.own_user_id
        )

    async def _in_direct_chat(self, room_id: str, body: str, ctx: Context) -> Dispatched | None:
        """In a direct chat, a command that is no read is refused (audited) and pointed to
        the coordination room; None for any other command, or any other room."""
        if not self._direct(room_id) or await ctx.workflow.dossiers.for_room(room_id):
            return None
        name = self.dispatcher.command_name(body)
        if name == UNKNOWN or name in DIRECT_COMMANDS:
            return None
        why = "not in a direct chat; use the coordination room"
        await ctx.workflow.refuse(ctx.actor, name, f"command:{name}", ctx.event_id, why)
        coordination = self.rooms.by_key[RoomKey.COORDINATION]
        return Dispatched(elsewhere(self.prefix, name, coordination), name, Outcome.REFUSED)

    async def turn_away(self, session: AsyncSession, room_id: str, user: str) -> None:
        """A user without a role who opened a direct chat: one line, then the bot leaves.
        Mentioning the user makes the sender wait until the bot sees them in the room."""
        line = turned_away(self.rooms.by_key[RoomKey.COORDINATION])
        rows = [
            Row(room_id, MESSAGE, notice(line, mentions={user: user})),
            Row(room_id, LEAVE, membership_request(self.own_user_id)),
        ]
        await self._write(session, f"turn-away:{room_id}", rows)

    def _command_text(self, event: Event) -> str | None:
        if not isinstance(event, RoomMessageText) or event.sender == self.own_user_id:
            return None
        content: dict[str, Any] = event.source.get("content", {})
        if content.get("msgtype") != "m.text":
            return None
        if content.get("m.relates_to", {}).get("rel_type") == "m.replace":
            return None  # an edit: see `_edit`
        return self._command_in(event.body)

    def _command_in(self, text: str) -> str | None:
        body = _REPLY_FALLBACK.sub("", text).strip()
        return body if self.dispatcher.is_command(body) else None

    def _edit(self, event: Event) -> tuple[str, str] | None:
        """(the edited event, the new command) for an edit that reads as a command. In an
        encrypted room the relation counts only if the homeserver sees the same one."""
        if not isinstance(event, RoomMessageText) or event.sender == self.own_user_id:
            return None
        content: dict[str, Any] = event.source.get("content", {})
        relates = content.get("m.relates_to") or {}
        new = content.get("m.new_content")
        if relates.get("rel_type") != "m.replace" or not isinstance(new, dict):
            return None
        original, text = relates.get("event_id"), new.get("body")
        if new.get("msgtype") != "m.text" or not isinstance(original, str):
            return None
        if not isinstance(text, str) or not relation_matches(event):
            return None
        body = self._command_in(text)
        return None if body is None else (original, body)

    async def _run_command(self, room_id: str, event: RoomMessageText, body: str) -> None:
        thread = _thread_root(event)

        async def work(session: AsyncSession, workflow: Workflow) -> Dispatched:
            dispatched = await self._dispatch(
                session, workflow, room_id, event, body, event.event_id, thread
            )
            command = runtime.CommandEvent(
                event.event_id, room_id, event.sender, settled(dispatched.outcome), thread
            )
            await runtime.record_command(session, command, workflow.now)
            return dispatched

        await self._counted(room_id, event, body, work)

    async def _run_edit(
        self, room_id: str, event: RoomMessageText, original_id: str, body: str
    ) -> None:
        """An edit of the sender's own command in this room: run if the command failed to
        parse (how Element users fix a typo), else answered "already done". The command's
        row changes in the edit's own transaction, so a second edit or a replayed one never
        runs it twice. An edit of anything else is ignored like any other message."""

        async def work(session: AsyncSession, workflow: Workflow) -> Dispatched | None:
            original = await runtime.command_event(session, original_id)
            if original is None or (original.sender, original.room_id) != (event.sender, room_id):
                return None
            if original.state != runtime.OPEN:
                reply = already(original.state, self.prefix)
                await self._enqueue(
                    session,
                    room_id,
                    event.event_id,
                    reply,
                    event.sender,
                    reply_to=original_id,
                    thread=original.thread_root,
                )
                return None
            dispatched = await self._dispatch(
                session, workflow, room_id, event, body, original_id, original.thread_root
            )
            if dispatched.outcome is not Outcome.USAGE_ERROR:
                await runtime.settle_command(session, original_id, settled(dispatched.outcome))
            return dispatched

        await self._counted(room_id, event, body, work)

    async def _dispatch(
        self,
        session: AsyncSession,
        workflow: Workflow,
        room_id: str,
        event: RoomMessageText,
        body: str,
        reply_to: str,
        thread: str | None,
    ) -> Dispatched:
        # Before the command, so what it looks up for a room that may not read it is no
        # read; _enqueue asks again after it (cached unless the command changed a role).
        if self.audience.knows(room_id):
            workflow.room_may_read = (await self.audience.verdict(session, room_id)).allows
        ctx = Context(
            actor=event.sender,
            roles=await workflow.roles_of(event.sender),
            room_id=room_id,
            event_id=event.event_id,
            now=workflow.now,
            tz=self.tz,
            prefix=self.prefix,
            workflow=workflow,
        )
        dispatched = await self._in_direct_chat(room_id, body, ctx)
        if dispatched is None:
            dispatched = await self.dispatcher.run(body, ctx)
        await self._enqueue(
            session,
            room_id,
            event.event_id,
            dispatched.reply,
            event.sender,
            reply_to=reply_to,
            thread=thread,
        )
        return dispatched

    async def _counted(
        self,
        room_id: str,
        event: RoomMessageText,
        body: str,
        work: Callable[[AsyncSession, Workflow], Awaitable[Dispatched | None]],
    ) -> None:
        """Runs a command's work once, then counts it for the metrics."""
        started = time.perf_counter()
        dispatched: list[Dispatched] = []

        async def counting(session: AsyncSession, workflow: Workflow) -> None:
            ran = await work(session, workflow)
            if ran is not None:
                dispatched.append(ran)

        thread = _thread_root(event)
        handled = await self._once(room_id, event, counting, answer_failure=True, thread=thread)
        # Counted once the outcome is committed, so a redo after a crash or an outage is not
        # counted twice (a crash between the commit and this line loses one count).
        if self.on_command is None or handled is Handled.SKIPPED:
            return
        elapsed = time.perf_counter() - started
        if handled is Handled.DONE:
            if dispatched:
                self.on_command(dispatched[-1].command, dispatched[-1].outcome, elapsed)
        else:
            self.on_command(self.dispatcher.command_name(body), Outcome.INTERNAL_ERROR, elapsed)

    async def _once(
        self,
        room_id: str,
        event: Event,
        work: Callable[[AsyncSession, Workflow], Awaitable[None]],
        answer_failure: bool,
        thread: str | None = None,
    ) -> Handled:
        """Claims the event and does its work in one transaction. A failure rolls the work
        back, is logged under a reference, and the event is still claimed, so a bug is
        reported once instead of retried forever; a database outage is left to the caller
        to retry. Commands tell their sender the reference (in their `thread`, if any);
        reactions have nobody to tell."""
        try:
            async with self.db.transaction() as session:
                now = self.clock.now()
                if not await runtime.claim_event(session, event.event_id, room_id, now):
                    return Handled.SKIPPED
                await work(session, self.workflow(session, now))
            handled = Handled.DONE
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception:
            ref = secrets.token_hex(4)
            log.exception(
                "handling failed, reference %s", ref, extra={**_ctx(room_id, event), "ref": ref}
            )
            async with self.db.transaction() as session:
                claimed = await runtime.claim_event(
                    session, event.event_id, room_id, self.clock.now()
                )
                if claimed and answer_failure:
                    failure = failure_reply(ref)
                    await self._enqueue(session, room_id, event.event_id, failure, thread=thread)
            handled = Handled.FAILED if claimed else Handled.SKIPPED
        if handled is Handled.DONE:
            # First, so the scheduler reads what is due before the answer is even sent.
            self.wake_scheduler()
        self.wake_sender()
        return handled

    def _room(self, room: RoomKey | str) -> str:
        return self.rooms.by_key[RoomKey(room)] if room in ROOM_KEYS else room

    async def _enqueue(
        self,
        session: AsyncSession,
        room_id: str,
        cause: str,
        reply: Reply,
        actor: str = "",
        *,
        reply_to: str | None = None,
        thread: str | None = None,
    ) -> None:
        """The reply, its announcements, files and room request, in the order they must
        happen; the sender turns the two `aegis.*` kinds into uploads and room creation.
        The reply answers `reply_to` (the cause unless said otherwise), in `thread` if the
        command was typed in one; an announcement to the same room joins it (bot/rows.py).

        An answer carrying personal data into a room that may not read it is withheld (the
        requester is told who is not cleared, and it is audited); its files with it. What
        passes is checked again by the sender just before it goes out."""
        answers = reply_to or cause
        carries = reply.carries
        check: dict[str, Any] | None = None
        if carries is not None:
            check = {"carries": str(carries), "reply_to": answers, "actor": actor}
            if thread:
                check["thread"] = thread
            if self.audience.knows(room_id):
                verdict = await self.audience.verdict(session, room_id)
                if not verdict.allows(carries):
                    shown = await self.audience.withhold(session, verdict, carries, actor, cause)
                    reply = dataclasses.replace(shown, also=reply.also, room=reply.room)
                    check = None
        answer = notice(
            reply,
            in_reply_to=answers,
            thread_root=thread,
            targets=await self._targets(session, reply),
        )
        rows: list[Row] = [Row(room_id, MESSAGE, answer, audience=check)]
        for announcement, posted in await self._announcement_groups(session, cause, reply.also):
            joined = merged_row(rows[0], announcement, posted)
            if joined is None:
                rows += posted
            else:
                rows[0] = joined
        # A file goes or stays with the answer it belongs to.
        files = None if check is None else {**check, "file": True}
        for attachment in reply.attachments:
            rows.append(
                Row(
                    room_id,
                    UPLOAD,
                    file_request(attachment, in_reply_to=answers, thread_root=thread),
                    audience=files,
                )
            )
        if reply.room is not None:
            rows.append(Row(room_id, CREATE_ROOM, room_request(reply.room)))
        await self._write(session, cause, rows)

    async def enqueue_announcements(
        self, session: AsyncSession, cause: str, announcements: tuple[Announcement, ...]
    ) -> None:
        """Messages with no command to reply to: caused by a reaction or a scheduled step."""
        await self._write(
            session, cause, await self._announcements_rows(session, cause, announcements)
        )

    async def _announcements_rows(
        self, session: AsyncSession, cause: str, announcements: tuple[Announcement, ...]
    ) -> list[Row]:
        groups = await self._announcement_groups(session, cause, announcements)
        return [row for _, rows in groups for row in rows]

    async def _announcement_groups(
        self, session: AsyncSession, cause: str, announcements: tuple[Announcement, ...]
    ) -> list[tuple[Announcement, list[Row]]]:
        """Each announcement with its rows. The same notice for the same room is posted
        once, e.g. when the proposer's room is the coordination room that is told anyway."""
        groups: list[tuple[Announcement, list[Row]]] = []
        seen: list[tuple[str, Reply]] = []
        for announcement in announcements:
            key = (self._room(announcement.room), announcement.reply)
            if announcement.replaces is None and key in seen:
                continue
            seen.append(key)
            groups.append(
                (announcement, await self._announcement_rows(session, cause, announcement))
            )
        return groups

    async def _announcement_rows(
        self, session: AsyncSession, cause: str, announcement: Announcement
    ) -> list[Row]:
        """Personal data only where the room may read it; elsewhere the brief form (IDs and
        counts, same ref, so a cut prompt still collects votes) or nothing, and coordination
        is alerted. What passes keeps its brief for the sender's last check."""
        room = self._room(announcement.room)
        extras = _Extras(
            await self._addressed(session, room, announcement),
            await self._targets(session, announcement.reply, announcement.brief),
        )
        carries = announcement.reply.carries
        check: dict[str, Any] | None = None
        if carries is not None:
            if self.audience.knows(room):
                verdict = await self.audience.verdict(session, room)
                if not verdict.allows(carries):
                    await self.audience.cut(session, verdict, carries, cause)
                    if announcement.brief is None:
                        return []
                    return self._posted(room, announcement, announcement.brief, None, extras)
            brief = announcement.brief
            check = {
                "carries": str(carries),
                "brief": None if brief is None else self._content(announcement, brief, extras),
            }
        return self._posted(room, announcement, announcement.reply, check, extras)

    async def _addressed(
        self, session: AsyncSession, room: str, announcement: Announcement
    ) -> dict[str, str]:
        """Who the post mentions, by name: those it names and those who must act on it."""
        users = list(announcement.mentions)
        if announcement.notify is not None:
            notify = announcement.notify
            roles = self.workflow(session).roles
            users += await roles.to_mention(notify.occasion, besides=notify.besides)
        return self.audience.addressed(room, users) if users else {}

    async def _targets(self, session: AsyncSession, *replies: Reply | None) -> Targets:
        """Where the replies' links go: the messages already sent under their refs."""
        refs = {link.ref for reply in replies if reply is not None for link in reply.links}
        return await outbox.sent_events(session, refs) if refs else {}

    def _content(self, announcement: Announcement, reply: Reply, extras: _Extras) -> dict[str, Any]:
        """An edit mentions nobody: who had to act was told by the message it edits."""
        if announcement.replaces:
            return edit(reply, announcement.replaces, extras.targets)
        return notice(
            reply,
            mentions=extras.mentions,
            thread_of=announcement.thread,
            targets=extras.targets,
        )

    def _posted(
        self,
        room: str,
        announcement: Announcement,
        reply: Reply,
        check: dict[str, Any] | None,
        extras: _Extras,
    ) -> list[Row]:
        content = self._content(announcement, reply, extras)
        if announcement.replaces:
            return [Row(room, MESSAGE, content, audience=check)]
        rows = [Row(room, MESSAGE, content, announcement.ref, check)]
        if announcement.ref:
            rows += [
                Row(room, REACTION, reaction(key, announcement.ref))
                for key in announcement.reactions
            ]
        files = None if check is None else {"carries": check["carries"]}
        rows += [
            Row(room, UPLOAD, file_request(attachment, in_reply_to=None), audience=files)
            for attachment in reply.attachments
        ]
        return rows

    async def _write(self, session: AsyncSession, cause: str, rows: list[Row]) -> None:
        now = self.clock.now()
        for index, row in enumerate(rows):
            await outbox.enqueue(
                session,
                txn_id=txn_id(cause, index),
                room_id=row.room_id,
                event_type=row.kind,
                content=row.content,
                now=now,
                ref=row.ref,
                audience=row.audience,
                names=file_text(row),
            )


@dataclass(frozen=True)
class _Extras:
    """What an announcement's content needs from outside its reply: who it mentions (user
    ID -> display name) and where its links go."""

    mentions: dict[str, str]
    targets: Targets


ROOM_KEYS = frozenset(key.value for key in RoomKey)


def file_text(row: Row) -> tuple[str, ...]:
    """A file's bytes as text, for the outbox to file it under the dossiers it names (an
    export, an agenda); its name alone may name none."""
    if row.kind != UPLOAD:
        return ()
    return (base64.b64decode(row.content["data"]).decode("utf-8", "replace"),)


def failure_reply(ref: str) -> Reply:
    return Reply(
        f"Internal error, reference {ref}.",
        Severity.ERROR,
        lines=("Nothing was changed. Quote the reference to an admin.",),
    )


def _arrival(event: RoomMemberEvent) -> Arrival | None:
    """Invites and joins; a join that follows a join is a change of display name or avatar."""
    if event.membership == "invite" and event.prev_membership != "invite":
        return Arrival.INVITED
    if event.membership == "join" and event.prev_membership != "join":
        return Arrival.JOINED
    return None


def membership_episode(event_id: str, source: dict[str, Any]) -> str:
    """Names a stay in a room: a join that accepts an invite continues the invite's episode,
    so the guard reports an uncleared user once, not at the invite and again at the join."""
    unsigned = source.get("unsigned") or {}
    previous = (unsigned.get("prev_content") or {}).get("membership")
    replaces = unsigned.get("replaces_state")
    membership = (source.get("content") or {}).get("membership")
    if membership == "join" and previous == "invite" and isinstance(replaces, str):
        return replaces
    return event_id


def _thread_root(event: Event) -> str | None:
    """The thread a command was typed in, from the (decrypted) content: its answer goes
    there. Where an answer appears is no vote, so the clear relation is not compared."""
    rel_type, root = _relation(event)
    return root if rel_type == "m.thread" and root else None


def _relation(event: Event) -> tuple[str, str]:
    relates = event.source.get("content", {}).get("m.relates_to") or {}
    return str(relates.get("rel_type", "")), str(relates.get("event_id", ""))


def _is_signal(event: Event, own_user_id: str) -> bool:
    """Events that feed the approval flow rather than the command dispatcher."""
    if isinstance(event, ReactionEvent):
        return True
    if isinstance(event, RedactionEvent):
        return bool(event.sender != own_user_id)
    return (
        isinstance(event, RoomMessageText)
        and event.sender != own_user_id
        and _relation(event)[0] == "m.thread"
    )


def _ctx(room_id: str, event: Event) -> dict[str, str]:
    return {"room_id": room_id, "event_id": event.event_id, "sender": event.sender}
