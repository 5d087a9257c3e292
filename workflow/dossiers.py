"""Dossier rules: IDs without gaps, valid categories and periods, closed means read-only,
and every change on the timeline and in the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from workflow.access import Data
from workflow.clock import human
from workflow.errors import NotFound, Refused
from workflow.model import (
    CATEGORIES,
    Assessment,
    Basis,
    Dossier,
    DossierFilter,
    DossierKind,
    DossierStatus,
    Measure,
    MeasureState,
    Person,
    ProposalAction,
    ProposalState,
    TimelineEntry,
    field_name,
)
from workflow.privacy import LIVE_MEASURES
from workflow.search import MIN_WORD, Found, query_words

if TYPE_CHECKING:
    from storage.audit import AuditRecordRow
    from workflow.core import Workflow
    from workflow.privacy import Reader

MAX_TITLE = 300
FIND_LIMIT = 20
EDITABLE = (
    "title",
    "category",
    "starts_at",
    "ends_at",
    "basis",
    "external_ref",
    "lead",
)


@dataclass(frozen=True)
class Page:
    dossiers: list[Dossier]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class Scope:
    """What applies to one person of a dossier, or (person None) to the dossier as a whole."""

    person: Person | None
    assessments: tuple[Assessment, ...]
    measures: tuple[Measure, ...]


def by_person(
    dossier: Dossier,
    assessments: Sequence[Assessment],
    measures: Sequence[Measure],
    removed_too: bool = False,
) -> tuple[Scope, ...]:
    """The whole dossier first, then each person by number (removed ones only if asked:
    a record keeps them, a summary shows who is covered now)."""
    persons = dossier.persons if removed_too else dossier.covered
    return tuple(
        Scope(
            person,
            tuple(a for a in assessments if a.person_id == (person.id if person else None)),
            tuple(m for m in measures if m.person_id == (person.id if person else None)),
        )
        for person in (None, *persons)
    )


@dataclass(frozen=True)
class DossierView:
    dossier: Dossier
    latest: Assessment | None
    recent: list[TimelineEntry]
    scopes: tuple[Scope, ...]
    """Per scope its current assessment (if any) and its measures in force or pending."""


@dataclass(frozen=True)
class DossierRecord:
    """Everything known about a dossier, for an export."""

    dossier: Dossier
    assessments: list[Assessment]
    measures: list[Measure]
    notes: list[tuple[datetime, str, str]]
    timeline: list[TimelineEntry]
    audit: list[AuditRecordRow]


def check_category(kind: DossierKind, category: str) -> str:
    valid = CATEGORIES[kind]
    if category not in valid:
        raise Refused(f"category: {category!r} is not a {kind} category; valid: {', '.join(valid)}")
    return category


def check_period(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at and ends_at and ends_at <= starts_at:
        raise Refused("end: must be after start")


def check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise Refused("title: must not be empty")
    if len(title) > MAX_TITLE:
        raise Refused(f"title: at most {MAX_TITLE} characters")
    return title


class DossierRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = workflow.store

    async def require(self, ref: str) -> Dossier:
        dossier = await self.store.dossier(ref)
        if dossier is None:
            raise NotFound(f"no dossier {ref}", ref)
        return dossier

    async def require_open(self, ref: str) -> Dossier:
        dossier = await self.require(ref)
        if dossier.status is DossierStatus.CLOSED:
            raise Refused(f"{ref} is closed; reopen it first (!dossier reopen {ref} <reason>)")
        return dossier

    async def for_room(self, room_id: str) -> str | None:
        return await self.store.dossier_for_room(room_id)

    async def _record(
        self, actor: str, event_id: str, ref: str, kind: str, text: str, detail: dict[str, Any]
    ) -> None:
        await self.store.add_timeline(
            ref, at=self.wf.now, actor=actor, kind=kind, text=text, event_id=event_id
        )
        await self.wf.audit(actor, f"dossier.{kind}", ref, event_id, detail)

    async def open(
        self,
        actor: str,
        event_id: str,
        *,
        kind: DossierKind,
        title: str,
        category: str | None,
        starts_at: datetime | None,
        ends_at: datetime | None,
        basis: Basis | None,
        external_ref: str | None,
        lead: str | None,
        subjects: Sequence[str],
    ) -> Dossier:
        """One person per subject name, numbered in the order given."""
        title = check_title(title)
        category = check_category(kind, category or "other")
        check_period(starts_at, ends_at)
        year = self.wf.now.astimezone(self.wf.policy.timezone).year
        sequence = await self.store.next_dossier_sequence(year)
        ref = f"D-{year}-{sequence:04d}"
        dossier = await self.store.insert_dossier(
            {
                "ref": ref,
                "kind": kind.value,
                "category": category,
                "title": title,
                "status": DossierStatus.OPEN.value,
                "basis": basis.value if basis else None,
                "external_ref": external_ref,
                "lead": lead,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "created_by": actor,
                "created_at": self.wf.now,
                "updated_at": self.wf.now,
            },
            subjects,
        )
        await self._record(
            actor,
            event_id,
            ref,
            "opened",
            f"{kind} dossier opened: {title}",
            {"kind": kind.value, "category": category, "title": title},
        )
        return dossier

    async def edit(self, actor: str, event_id: str, ref: str, changes: dict[str, Any]) -> Dossier:
        dossier = await self.require_open(ref)
        unknown = set(changes) - set(EDITABLE)
        if unknown or not changes:
            raise Refused("give at least one field=value to change")
        if "title" in changes:
            changes["title"] = check_title(changes["title"])
        if "category" in changes:
            check_category(dossier.kind, changes["category"])
        check_period(
            changes.get("starts_at", dossier.starts_at), changes.get("ends_at", dossier.ends_at)
        )
        if "basis" in changes and changes["basis"] is not None:
            changes["basis"] = changes["basis"].value
        if changes:
            await self.store.update_dossier(ref, changes)
        tz = self.wf.policy.timezone
        described = "; ".join(f"{field_name(k)} = {_show(v, tz)}" for k, v in changes.items())
        await self._record(
            actor, event_id, ref, "edited", described, {k: _audited(v) for k, v in changes.items()}
        )
        return await self.require(ref)

    async def note(self, actor: str, event_id: str, ref: str, text: str) -> Dossier:
        dossier = await self.require_open(ref)
        if not text.strip():
            raise Refused("note: the text is empty")
        await self.store.add_note(ref, author=actor, text=text, at=self.wf.now, event_id=event_id)
        await self._record(actor, event_id, ref, "note", text, {})
        return dossier

    async def close(self, actor: str, event_id: str, ref: str, reason: str) -> Dossier:
        """Refused while protection is in force or could still come into force: closed, the
        dossier is read-only, so nobody could end or decide those measures any more."""
        await self.require(ref)
        blocking = await self._open_measures(ref)
        if blocking:
            raise Refused(
                f"{ref} cannot be closed while measures are in force or pending; settle each:",
                tuple(blocking),
            )
        return await self._set_status(actor, event_id, ref, DossierStatus.CLOSED, reason)

    async def _open_measures(self, ref: str) -> list[str]:
        """One line per measure in force, approved to start, proposed or with a change
        pending, naming the command that settles it."""
        measures = self.wf.store.measures
        found = []
        undecided = [MeasureState.PROPOSED, MeasureState.PROVISIONAL, MeasureState.ACTIVE]
        for measure in sorted(await measures.listing(ref, undecided), key=lambda m: m.id):
            pending = [
                p
                for p in await measures.proposals_of(measure.id)
                if p.state is ProposalState.PENDING
            ]
            state = measure.state.value
            if measure.starts_at is not None and measure.scheduled_at(self.wf.now):
                state = f"approved, starts {human(measure.starts_at, self.wf.policy.timezone)}"
            line = f"{measure.ref} {measure.type} ({state}): "
            if pending:
                p = pending[0]
                line += (
                    f"{p.ref} ({p.action}) is pending; it is decided by the approvers, or "
                    f"withdrawn by {p.proposer} with !proposal withdraw {p.ref}"
                )
                if (
                    measure.state is not MeasureState.PROPOSED
                    and p.action is not ProposalAction.END
                ):
                    line += f"; then end the measure with !measure end {measure.ref} <reason>"
            else:
                line += f"end it with !measure end {measure.ref} <reason>"
            found.append(line)
        return found

    async def reopen(self, actor: str, event_id: str, ref: str, reason: str) -> Dossier:
        return await self._set_status(actor, event_id, ref, DossierStatus.OPEN, reason)

    async def _set_status(
        self, actor: str, event_id: str, ref: str, status: DossierStatus, reason: str
    ) -> Dossier:
        dossier = await self.require(ref)
        if dossier.status is status:
            raise Refused(f"{ref} is {status} already")
        await self.store.update_dossier(ref, {"status": status.value})
        kind = "closed" if status is DossierStatus.CLOSED else "reopened"
        await self._record(actor, event_id, ref, kind, reason, {"reason": reason})
        return await self.require(ref)

    async def view(self, ref: str, reader: Reader) -> DossierView:
        dossier = await self.require(ref)
        await self.wf.privacy.read(reader, ref)
        latest = await self.store.assessments(ref, limit=1)
        live = await self.store.measures.listing(ref, LIVE_MEASURES)
        return DossierView(
            dossier,
            latest[0] if latest else None,
            await self.store.timeline(ref, 8),
            by_person(
                dossier,
                await self.store.current_assessments(ref),
                sorted(live, key=lambda m: m.id),
            ),
        )

    async def timeline(self, ref: str, reader: Reader) -> list[TimelineEntry]:
        await self.require(ref)
        await self.wf.privacy.read(reader, ref)
        return await self.store.timeline(ref)

    async def page(self, wanted: DossierFilter, page: int, reader: Reader) -> Page:
        if page < 1:
            raise Refused("page: counts from 1")
        size = self.wf.policy.page_size
        dossiers, total = await self.store.list_dossiers(wanted, (page - 1) * size, size)
        await self.wf.privacy.read_many(reader, [d.ref for d in dossiers])
        return Page(dossiers, total, page, max(1, -(-total // size)))

    async def find(self, text: str, reader: Reader) -> Found:
        """The search text is not recorded: it may be a protected person's name."""
        words = query_words(text)
        if not words:
            raise Refused(f"find: give a word of at least {MIN_WORD} characters")
        found = await self.store.find_dossiers(words, FIND_LIMIT)
        await self.wf.privacy.read_many(reader, [hit.dossier.ref for hit in found.hits])
        return found

    async def record(self, ref: str, reader: Reader) -> DossierRecord:
        """Everything, for an export; the read is recorded after the audit entries are taken,
        so the file shows the trail up to this export."""
        dossier = await self.require(ref)
        record = DossierRecord(
            dossier,
            await self.store.assessments(ref),
            sorted(await self.store.measures.listing(ref, None, limit=None), key=lambda m: m.id),
            await self.store.notes(ref),
            await self.store.timeline(ref),
            await self.store.audit_entries(ref),
        )
        await self.wf.privacy.read(reader, ref)
        return record

    async def request_room(
        self, actor: str, event_id: str, ref: str, invite: Sequence[str]
    ) -> Dossier:
        """Records the request on the dossier in the same transaction as the reply, so a
        second request is refused even before the homeserver has made the room. Everyone to
        be invited (the requester too) must be cleared to read dossier content: every post
        in a dossier room is."""
        dossier = await self.require_open(ref)
        if dossier.room_id:
            raise Refused(f"{ref} already has its room: {dossier.room_id}")
        if dossier.room_requested_at:
            raise Refused(f"{ref} already has its room on the way: it is being created")
        uncleared = [
            user
            for user in dict.fromkeys([actor, *invite])
            if not self.wf.access.cleared(user, await self.wf.roles_of(user), Data.DOSSIER)
        ]
        if uncleared:
            why = f"not cleared to read dossier content: {', '.join(uncleared)}"
            await self.wf.refuse(actor, "dossier room", ref, event_id, why)
            raise Refused(f"invite: {why}")
        await self.store.update_dossier(ref, {"room_requested_at": self.wf.now})
        await self._record(
            actor,
            event_id,
            ref,
            "room",
            "dedicated room requested" + (f", inviting {', '.join(invite)}" if invite else ""),
            {"invite": list(invite)},
        )
        return dossier


def _show(value: Any, tz: ZoneInfo) -> str:
    """A changed value on the timeline, which people read: times local and human."""
    if isinstance(value, datetime):
        return human(value, tz)
    return "—" if value is None else str(value)


def _audited(value: Any) -> str:
    """A changed value in the audit detail, which machines compare: times as ISO instants."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return "—" if value is None else str(value)
