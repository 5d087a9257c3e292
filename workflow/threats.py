"""Threat assessments: a level from OCAD, the police or VSSE, with a review date. The level
never decides measures by itself; it is recorded, dated and announced when it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflow.errors import Refused
from workflow.model import Assessment, Source, ThreatLevel

if TYPE_CHECKING:
    from workflow.core import Workflow
    from workflow.privacy import Reader


@dataclass(frozen=True)
class Logged:
    assessment: Assessment
    previous: Assessment | None

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
    ) -> Logged:
        await self.wf.dossiers.require_open(ref)
        if not summary.strip():
            raise Refused("summary: describe the assessment")
        review = review_at or self.wf.now + timedelta(days=self.wf.policy.review_days)
        if review <= self.wf.now:
            raise Refused("review: must be in the future")
        previous = await self.store.assessments(ref, limit=1)
        assessment = Assessment(
            dossier_ref=ref,
            level=level,
            source=source,
            summary=summary.strip(),
            external_ref=external_ref,
            review_at=review,
            assessed_by=actor,
            created_at=self.wf.now,
        )
        await self.store.add_assessment(assessment, event_id)
        await self.store.add_timeline(
            ref,
            at=self.wf.now,
            actor=actor,
            kind="assessment",
            text=f"threat level {level.label} ({source}): {assessment.summary}",
            event_id=event_id,
        )
        await self.wf.audit(
            actor, "threat.log", ref, event_id, {"level": int(level), "source": source.value}
        )
        return Logged(assessment, previous[0] if previous else None)

    async def history(self, ref: str, reader: Reader) -> list[Assessment]:
        await self.wf.dossiers.require(ref)
        await self.wf.privacy.read(reader, ref)
        return await self.store.assessments(ref)
