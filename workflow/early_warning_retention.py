"""Retention of early warning: `retention.early_warning_days` after a report, a sector
warning or a webhook was last acted on, `aegis purge` blanks what it holds of people.

- A report keeps its ID, partner, category, status, the officials who assessed it and its
  dates; what the company wrote goes (place and coordinates, description, plate, contact,
  attachments, its idempotency key) and so do the partners' note and closing reason. Its
  normalised plate and site go too, so it never correlates with a new report again.
- A sector warning keeps its ID, sector, drafter, votes, state and dates; its text goes. A
  warning still waiting for approval is held: approved later, it would send a blank.
- A webhook that is done (delivered or given up) keeps its partner, kind, subject, attempts
  and outcome; its payload goes. One still being retried waits for its last attempt.
- Delivery records (which partner an approved warning was for, when it fetched it) hold no
  personal data and stay, so `!ew deliveries` still answers for a purged warning.
- The audit details of a purged report or warning are tombstoned, named by the purge's own
  entry, so the chain still verifies.

A report linked to a dossier left a copy of its text on the dossier's timeline: that copy is
the dossier's, and goes with the dossier's own retention (workflow/privacy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflow.early_warning_model import WarningState
from workflow.privacy import PURGED

if TYPE_CHECKING:
    from storage.early_warning_retention import EarlyWarningRetentionStore
    from workflow.core import Workflow


@dataclass(frozen=True)
class OldReport:
    id: int
    last_change: datetime

    @property
    def ref(self) -> str:
        return f"EW-{self.id}"


@dataclass(frozen=True)
class OldWarning:
    id: int
    state: WarningState
    last_change: datetime  # decided, or drafted while pending

    @property
    def ref(self) -> str:
        return f"W-{self.id}"

    @property
    def held(self) -> bool:
        return self.state is WarningState.PENDING


@dataclass(frozen=True)
class EarlyWarningPlan:
    cutoff: datetime
    reports: list[OldReport]
    warnings: list[OldWarning]
    held: list[OldWarning]
    webhooks: int


def early_warning_cutoff(now: datetime, days: int) -> datetime:
    """Last acted on at or before this moment: due."""
    return now - timedelta(days=days)


class EarlyWarningRetention:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> EarlyWarningRetentionStore:
        return self.wf.store.ew_retention

    def cutoff(self, days: int) -> datetime:
        return early_warning_cutoff(self.wf.now, days)

    async def plan(self, days: int) -> EarlyWarningPlan:
        cutoff = self.cutoff(days)
        warnings = await self.store.old_warnings(cutoff)
        return EarlyWarningPlan(
            cutoff,
            await self.store.old_reports(cutoff),
            [w for w in warnings if not w.held],
            [w for w in warnings if w.held],
            await self.store.old_webhooks(cutoff),
        )

    async def purge_report(self, actor: str, report_id: int, days: int) -> bool:
        """Purges one report if it is (still) due; False if not, e.g. assessed since."""
        seqs = await self.store.purge_report(report_id, self.cutoff(days), self.wf.now, PURGED)
        if seqs is None:
            return False
        await self._record(actor, "ew.purged", f"EW-{report_id}", days, seqs)
        return True

    async def purge_warning(self, actor: str, warning_id: int, days: int) -> bool:
        """Purges one decided warning if it is (still) due; False if not."""
        seqs = await self.store.purge_warning(warning_id, self.cutoff(days), self.wf.now, PURGED)
        if seqs is None:
            return False
        await self._record(actor, "warning.purged", f"W-{warning_id}", days, seqs)
        return True

    async def purge_webhooks(self, actor: str, days: int) -> int:
        """Blanks the payloads of the webhooks that are done and due; how many."""
        purged = await self.store.purge_webhooks(self.cutoff(days), self.wf.now)
        if purged:
            await self.wf.audit(
                actor, "webhooks.purged", "", "", {"retention_days": days, "webhooks": purged}
            )
        return purged

    async def _record(
        self, actor: str, action: str, ref: str, days: int, tombstoned: list[int]
    ) -> None:
        # Named here, the tombstoned audit details still verify (storage/audit.py).
        detail = {"retention_days": days, "tombstoned": tombstoned}
        await self.wf.audit(actor, action, ref, "", detail)
