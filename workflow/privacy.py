"""Data protection: who read a dossier, and how long its personal data is kept.

Retention: `retention.closed_dossier_years` after a dossier was closed, its personal data is
removed. Free text and names go (title, persons' names, notes, external references, timeline
texts, assessment summaries, measure details, proposal reasons and rationales, audit details,
the words search indexed), the personal reminders about the dossier are deleted, and the
dossier stays as a tombstone with its ID, kind, category, dates, levels and states (its
persons as numbered rows, so yearly counts of persons covered stay exact); the officials'
actions stay on the timeline and in the audit trail, so references still resolve. A dossier
with a measure still in force or a proposal pending is held, not purged.

Access trail: every command that displays dossier content records one audit entry,
`dossier.read`, naming the dossiers it displayed under `dossiers` (a listing of twenty names
twenty; an empty listing names none). A command about one dossier (show, timeline, export,
threat list, measure show) has that dossier as the entry's target, and a purge tombstones it
with the rest of the dossier's trail. A listing (list, find, approvals) has no target; its
detail holds only the command's name and dossier IDs, which are not personal data, so a
purge leaves it whole: it also records the reads of the other dossiers it listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from workflow.access import Data
from workflow.errors import Refused
from workflow.model import DossierKind, MeasureState

if TYPE_CHECKING:
    from storage.audit import AuditRecordRow
    from storage.privacy import PrivacyStore
    from workflow.core import Workflow

PURGED = "(purged)"  # what replaces free text in a tombstone
READ = "dossier.read"
# A measure in these states still protects someone, or may soon: its dossier is held.
LIVE_MEASURES = (MeasureState.ACTIVE, MeasureState.PROVISIONAL, MeasureState.PROPOSED)


@dataclass(frozen=True)
class Reader:
    """Who reads a dossier, from which event, with which command."""

    actor: str
    event_id: str
    via: str


@dataclass(frozen=True)
class ClosedDossier:
    ref: str
    kind: DossierKind
    closed_at: datetime
    in_force: int  # its LIVE_MEASURES: while any, the dossier is held


@dataclass(frozen=True)
class PersonalData:
    """How many records of a dossier hold personal data (before a purge) or held it."""

    persons: int = 0
    notes: int = 0
    assessments: int = 0
    timeline: int = 0
    measures: int = 0
    proposals: int = 0
    audit_entries: int = 0
    reminders: int = 0

    def describe(self) -> str:
        """`2 persons, 1 note`: each count with its noun agreeing."""
        parts = [f"{n} {_NOUNS[name][n != 1]}" for name, n in asdict(self).items() if n]
        return ", ".join(parts) or "nothing left"


_NOUNS = {
    "persons": ("person", "persons"),
    "notes": ("note", "notes"),
    "assessments": ("assessment", "assessments"),
    "timeline": ("timeline entry", "timeline entries"),
    "measures": ("measure", "measures"),
    "proposals": ("proposal", "proposals"),
    "audit_entries": ("audit entry", "audit entries"),
    "reminders": ("reminder", "reminders"),
}


@dataclass(frozen=True)
class RetentionPlan:
    cutoff: datetime
    due: list[ClosedDossier]
    held: list[ClosedDossier]


@dataclass(frozen=True)
class Trail:
    ref: str
    entries: list[AuditRecordRow]  # newest first
    total: int
    page: int
    pages: int
    readers: list[tuple[str, int, datetime]]  # (who, how often, last), latest first


def retention_cutoff(now: datetime, years: int) -> datetime:
    """Closed at or before this moment: due. Calendar years; 29 February falls back to the 28th."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def is_due(dossier: ClosedDossier, cutoff: datetime) -> bool:
    return dossier.closed_at <= cutoff and not dossier.in_force


class PrivacyRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> PrivacyStore:
        return self.wf.store.privacy

    async def read(self, reader: Reader, ref: str) -> None:
        """A command about one dossier displayed it."""
        await self._record(reader, ref, [ref])

    async def read_many(self, reader: Reader, shown: Sequence[str]) -> None:
        """A listing displayed these dossiers (in order, each once): one entry for all."""
        await self._record(reader, "", list(dict.fromkeys(shown)))

    async def _record(self, reader: Reader, target: str, refs: list[str]) -> None:
        if not self.wf.room_may_read(Data.DOSSIER):
            return  # the answer is withheld (audited as such): nobody was shown anything
        detail = {"command": reader.via, "dossiers": refs}
        seq = await self.wf.audit(reader.actor, READ, target, reader.event_id, detail)
        await self.store.index_read(seq, refs)

    async def plan(self, years: int) -> RetentionPlan:
        cutoff = retention_cutoff(self.wf.now, years)
        closed = await self.store.closed_before(cutoff)
        return RetentionPlan(
            cutoff,
            [d for d in closed if is_due(d, cutoff)],
            [d for d in closed if not is_due(d, cutoff)],
        )

    async def personal_data(self, ref: str) -> PersonalData:
        return await self.store.personal_data(ref)

    async def purge(self, actor: str, ref: str, years: int) -> PersonalData | None:
        """Purges one dossier if it is (still) due, recording it in the audit trail; None if
        it is not, e.g. reopened since the plan was made."""
        dossier = await self.store.closed(ref)
        if dossier is None or not is_due(dossier, retention_cutoff(self.wf.now, years)):
            return None
        removed, tombstoned = await self.store.purge(ref, self.wf.now, PURGED)
        await self.wf.audit(
            actor,
            "dossier.purged",
            ref,
            "",
            {
                "closed_at": dossier.closed_at.isoformat(),
                "retention_years": years,
                "removed": asdict(removed),
                # Named here, the tombstoned audit details still verify (storage/audit.py).
                "tombstoned": tombstoned,
            },
        )
        return removed

    async def trail(self, actor: str, event_id: str, ref: str, page: int) -> Trail:
        """Who read and changed a dossier, newest first; looking is itself recorded."""
        if page < 1:
            raise Refused("page: counts from 1")
        await self.wf.dossiers.require(ref)
        size = self.wf.policy.page_size
        entries, total = await self.store.trail(ref, (page - 1) * size, size)
        readers = await self.store.readers(ref)
        await self.wf.audit(actor, "audit.read", ref, event_id, {"page": page})
        return Trail(ref, entries, total, page, max(1, -(-total // size)), readers)
