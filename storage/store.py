"""The storage interface the workflow is given: one transaction, queries by intent.

The workflow never sees a session or a statement; it asks for what it needs by name."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, dossiers, ids, roles
from storage.early_warning import EarlyWarningStore
from storage.early_warning_retention import EarlyWarningRetentionStore
from storage.measures import MeasureStore
from storage.meetings import AgendaStore, MeetingStore
from storage.privacy import PrivacyStore
from storage.reminders import ReminderStore
from workflow.model import Assessment, Dossier, DossierFilter, Person, TimelineEntry
from workflow.role_model import RequestState, RoleRequest
from workflow.search import Found


class Store:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.measures = MeasureStore(session)
        self.meetings = MeetingStore(session)
        self.agenda = AgendaStore(session)
        self.privacy = PrivacyStore(session)
        self.early_warning = EarlyWarningStore(session)
        self.ew_retention = EarlyWarningRetentionStore(session)
        self.reminders = ReminderStore(session)

    async def append_audit(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        event_id: str,
        detail: dict[str, Any],
        now: datetime,
    ) -> int:
        record = audit.AuditRecord(actor, role, action, target, event_id, detail)
        return await audit.append(self.session, record, now)

    async def audit_entries(self, ref: str) -> list[audit.AuditRecordRow]:
        return await audit.entries_for(self.session, ref)

    async def role_changes(self, user_id: str) -> dict[str, bool]:
        return await roles.changes_for(self.session, user_id)

    async def all_role_changes(self) -> dict[str, dict[str, bool]]:
        return await roles.all_changes(self.session)

    async def roles_version(self) -> tuple[int, datetime | None]:
        return await roles.version(self.session)

    async def set_role(
        self, user_id: str, role: str, granted: bool, by: str, now: datetime
    ) -> None:
        await roles.set_role(self.session, user_id, role, granted, by, now)

    async def add_role_request(self, fields: dict[str, Any]) -> RoleRequest:
        return await roles.add_request(self.session, fields)

    async def role_request(self, request_id: int, lock: bool = False) -> RoleRequest | None:
        return await roles.request(self.session, request_id, lock)

    async def pending_role_requests(self) -> list[RoleRequest]:
        return await roles.pending_requests(self.session)

    async def close_role_request(
        self, request_id: int, state: RequestState, by: str, now: datetime
    ) -> bool:
        return await roles.close_request(self.session, request_id, state, by, now)

    async def next_dossier_sequence(self, year: int) -> int:
        return await dossiers.next_sequence(self.session, year)

    async def insert_dossier(self, fields: dict[str, Any], names: Sequence[str]) -> Dossier:
        return await dossiers.insert(self.session, fields, names)

    async def dossier(self, ref: str) -> Dossier | None:
        return await dossiers.get(self.session, ref)

    async def dossiers(self, refs: Sequence[str]) -> dict[str, Dossier]:
        return await dossiers.get_many(self.session, refs)

    async def latest_assessments(self, refs: Sequence[str]) -> dict[str, Assessment]:
        return await dossiers.latest_assessments(self.session, refs)

    async def dossier_for_room(self, room_id: str) -> str | None:
        return await dossiers.ref_for_room(self.session, room_id)

    async def dossier_rooms(self) -> dict[str, str]:
        return await dossiers.rooms(self.session)

    async def update_dossier(self, ref: str, fields: dict[str, Any]) -> None:
        await dossiers.update_fields(self.session, ref, fields)

    async def add_person(self, ref: str, name: str, at: datetime) -> Person:
        return await dossiers.add_person(self.session, ref, name, at)

    async def rename_person(self, person_id: int, name: str) -> None:
        await dossiers.rename_person(self.session, person_id, name)

    async def remove_person(self, person_id: int, at: datetime) -> None:
        await dossiers.remove_person(self.session, person_id, at)

    async def coverage(self, year: int) -> tuple[int, int]:
        return await dossiers.coverage(self.session, year)

    async def add_timeline(
        self, ref: str, *, at: datetime, actor: str, kind: str, text: str, event_id: str
    ) -> None:
        await dossiers.add_timeline(
            self.session, ref, at=at, actor=actor, kind=kind, text=text, event_id=event_id
        )

    async def add_note(
        self, ref: str, *, author: str, text: str, at: datetime, event_id: str
    ) -> None:
        await dossiers.add_note(
            self.session, ref, author=author, text=text, at=at, event_id=event_id
        )

    async def add_assessment(self, assessment: Assessment, event_id: str) -> None:
        await dossiers.add_assessment(self.session, assessment, event_id)

    async def latest_assessment(self, ref: str, person_id: int | None) -> Assessment | None:
        return await dossiers.latest_assessment(self.session, ref, person_id)

    async def current_assessments(self, ref: str) -> list[Assessment]:
        return await dossiers.current_assessments(self.session, ref)

    async def assessments(self, ref: str, limit: int | None = None) -> list[Assessment]:
        return await dossiers.assessments(self.session, ref, limit)

    async def timeline(self, ref: str, limit: int | None = None) -> list[TimelineEntry]:
        return await dossiers.timeline(self.session, ref, limit)

    async def notes(self, ref: str) -> list[tuple[datetime, str, str]]:
        return await dossiers.notes(self.session, ref)

    async def list_dossiers(
        self, wanted: DossierFilter, offset: int, limit: int
    ) -> tuple[list[Dossier], int]:
        return await dossiers.listing(self.session, wanted, offset, limit)

    async def find_dossiers(self, words: Sequence[str], limit: int) -> Found:
        return await dossiers.find(self.session, words, limit)

    async def existing_ids(self, kind: str) -> list[str]:
        return await ids.existing(self.session, kind)
