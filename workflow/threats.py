"""Threat assessments: a level from OCAD, the police or VSSE, with a review date. The level
never decides measures by itself; it is recorded, dated and announced when it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflow.errors import Refused
from workflow.model import Assessment, Person, Source, ThreatLevel

if TYPE_CHECKING:
    from workflow.core import Workflow
    from workflow.persons import PersonPick
    from workflow.privacy import Reader


@dataclass(frozen=True)
class Logged:
    """`previous` is the last assessment of the same scope: the same person, or the
    dossier as a whole."""

    assessment: Assessment
    previous: Assessment | None
    person: Person | None = None

    @property
    def scope(self) -> str:
        """What was assessed: `D-2026-0007` or `D-2026-0007/2`."""
        return self.person.ref if self.person else self.assessment.dossier_ref

    @property
    def changed(self) -> bool:
        return self.previous is None or self.previous.level != self.assessment.level

    @property
    def raised_to_serious(self) -> bool:
        """A rise into level 3 or 4: the partners must not miss it."""
        before = self.previous.level if self.previous else 0
        return self.assessment.level >= ThreatLevel.SERIOUS and self.assessment.level > before


class ThreatRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = workflow.store

    async def log(
        self,
        actor: str,
        event_id: str,
        ref: str,
        *,
        level: ThreatLevel,
        source: Source,
        summary: str,
        review_at: datetime | None,
        external_ref: str | None,
        person: PersonPick | None = None,
    ) -> Logged:
        await self.wf.dossiers.require_open(ref)
        assessed = await self.wf.persons.resolve(ref, person)
        person_id = assessed.id if assessed else None
        if not summary.strip():
            raise Refused("summary: describe the assessment")
        review = review_at or self.wf.now + timedelta(days=self.wf.policy.review_days)
        if review <= self.wf.now:
            raise Refused("review: must be in the future")
        previous = await self.store.latest_assessment(ref, person_id)
        assessment = Assessment(
            dossier_ref=ref,
            level=level,
            source=source,
            summary=summary.strip(),
            external_ref=external_ref,
            review_at=review,
            assessed_by=actor,
            created_at=self.wf.now,
            person_id=person_id,
        )
        await self.store.add_assessment(assessment, event_id)
        await self.store.add_timeline(
            ref,
            at=self.wf.now,
            actor=actor,
            kind="assessment",
            text=(f"{assessed.ref}: " if assessed else "")
            + f"threat level {level.label} ({source}): {assessment.summary}",
            event_id=event_id,
        )
        detail: dict[str, object] = {"level": int(level), "source": source.value}
        if assessed:
            detail["person"] = assessed.ref
        await self.wf.audit(actor, "threat.log", ref, event_id, detail)
        return Logged(assessment, previous, assessed)

    async def history(self, ref: str, reader: Reader) -> list[Assessment]:
        await self.wf.dossiers.require(ref)
        await self.wf.privacy.read(reader, ref)
        return await self.store.assessments(ref)
