"""Early warning with the private sector: partners report, the security partners triage and
link, and a sector warning goes out only once the minister's office approved it.

Partners never see Matrix: what they learn (a status change, a warning) is queued as a
webhook in the same transaction as the change, and is readable by GET as well."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from config import Role
from workflow.approvals import Ignored, tally
from workflow.clock import human
from workflow.early_warning_model import (
    ALL_SECTORS,
    EARTH_RADIUS_M,
    Delivery,
    NewPartner,
    Partner,
    Report,
    ReportInput,
    ReportStatus,
    Sector,
    SectorWarning,
    WarningState,
    distance_m,
    plate_key,
    site_key,
)
from workflow.errors import NotFound, Refused
from workflow.model import Choice

if TYPE_CHECKING:
    from storage.early_warning import EarlyWarningStore
    from workflow.core import Workflow

TOKEN_PREFIX = "aegis_ew_"
PAGE_SIZE = 20
WARNING_TEXT_MAX = 4000
WARNING_APPROVERS = frozenset({Role.APPROVER, Role.WARNING_APPROVER})


@dataclass(frozen=True)
class EarlyWarningPolicy:
    window: timedelta = timedelta(days=14)
    radius_m: int = 500
    pattern_threshold: int = 3
    reports_per_hour: int = 30


@dataclass(frozen=True)
class Submitted:
    report: Report
    correlated: tuple[Report, ...]
    duplicate: bool = False
    """The partner resent a report it had already sent (same Idempotency-Key)."""

    def pattern(self, threshold: int) -> bool:
        return len(self.correlated) + 1 >= threshold


@dataclass(frozen=True)
class ReportPage:
    reports: list[Report]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class WarningDecision:
    warning: SectorWarning
    recipients: tuple[Partner, ...] = field(default=())


@dataclass(frozen=True)
class WarningVote:
    decision: WarningDecision | None = None
    ignored: Ignored | None = None


def token_hash(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough to keep them unguessable
    from a database dump; a slow KDF would only slow down every API call."""
    return hashlib.sha256(token.encode()).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the X-Aegis-Signature header: HMAC-SHA256 over `<timestamp>.<body>`, so a
    receiver can also refuse replays of old deliveries."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _box(lat: float, lon: float, radius_m: int) -> tuple[float, float, float, float]:
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


class EarlyWarningRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> EarlyWarningStore:
        return self.wf.store.early_warning

    @property
    def policy(self) -> EarlyWarningPolicy:
        return self.wf.policy.early_warning

    # --- partners (the `aegis partner` command line) --------------------------------------

    async def add_partner(
        self, actor: str, name: str, sector: Sector, webhook_url: str | None
    ) -> NewPartner:
        name = " ".join(name.split())
        if not 1 <= len(name) <= 200:
            raise Refused("the organisation's name must have 1 to 200 characters")
        token, secret = TOKEN_PREFIX + secrets.token_urlsafe(32), secrets.token_hex(32)
        partner = await self.store.add_partner(
            name, sector, webhook_url, token_hash(token), secret, self.wf.now
        )
        await self.wf.audit(
            actor, "partner.added", partner.ref, "", {"name": name, "sector": sector.value}
        )
        return NewPartner(partner, token, secret)

    async def require_partner(self, partner_id: int) -> Partner:
        partner = await self.store.partner(partner_id)
        if partner is None:
            raise Refused(f"there is no partner {partner_id}")
        return partner

    async def revoke(self, actor: str, partner_id: int) -> Partner:
        partner = await self.require_partner(partner_id)
        if partner.revoked_at is None:
            await self.store.update_partner(partner_id, {"revoked_at": self.wf.now})
            await self.wf.audit(actor, "partner.revoked", partner.ref, "", {})
        return await self.require_partner(partner_id)

    async def rotate(self, actor: str, partner_id: int, webhook_secret: bool) -> NewPartner:
        """A new API token (the old one stops working at once), and a new webhook secret if
        asked; the partner must switch its receiver's secret at the same time."""
        partner = await self.require_partner(partner_id)
        if partner.revoked_at is not None:
            raise Refused(f"partner {partner_id} is revoked")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        fields: dict[str, Any] = {"token_hash": token_hash(token)}
        if webhook_secret:
            fields["webhook_secret"] = secrets.token_hex(32)
        await self.store.update_partner(partner_id, fields)
        await self.wf.audit(
            actor, "partner.rotated", partner.ref, "", {"webhook_secret": webhook_secret}
        )
        return NewPartner(partner, token, await self.store.webhook_secret(partner_id))

    async def partners(self) -> list[Partner]:
        return await self.store.partners()

    async def authenticate(self, token: str, remote: str) -> Partner | None:
        """The partner holding this token; a refusal is audited without saying whether the
        token was unknown or revoked."""
        partner = None
        if token.startswith(TOKEN_PREFIX) and len(token) < 200:
            partner = await self.store.partner_by_token_hash(token_hash(token))
        if partner is None:
            await self.wf.audit(f"http:{remote}", "refused:intake.auth", "", "", {})
        return partner

    # --- reports in -----------------------------------------------------------------------

    async def retry_after(self, partner: Partner) -> timedelta | None:
        """How long until the partner may send again, or None if it is under its limit."""
        hour = timedelta(hours=1)
        arrived = await self.store.received_since(partner.id, self.wf.now - hour)
        if len(arrived) < self.policy.reports_per_hour:
            return None
        return arrived[-self.policy.reports_per_hour] + hour - self.wf.now

    async def submit(
        self, partner: Partner, report: ReportInput, idempotency_key: str | None = None
    ) -> Submitted:
        if idempotency_key:
            earlier = await self.store.report_by_key(partner.id, idempotency_key)
            if earlier is not None:
                return Submitted(earlier, tuple(await self.correlated(earlier)), duplicate=True)
        stored = await self.store.insert_report(
            partner.id,
            report,
            plate_key(report.vehicle_plate),
            site_key(report.location),
            idempotency_key,
            self.wf.now,
        )
        correlated = tuple(await self.correlated(stored))
        await self.wf.audit(
            partner.ref,
            "ew.reported",
            stored.ref,
            "",
            {"category": report.category.value, "correlated": [r.ref for r in correlated]},
        )
        return Submitted(stored, correlated)

    async def correlated(self, report: Report) -> list[Report]:
        """Reports from any partner within the window that share the normalised plate, name
        the same site, or lie within the radius."""
        at, window = report.input.observed_at, self.policy.window
        here = (
            (report.input.lat, report.input.lon)
            if report.input.lat is not None and report.input.lon is not None
            else None
        )
        box = _box(*here, self.policy.radius_m) if here else None
        found = []
        for other in await self.store.candidates(report, at - window, at + window, box):
            same = (report.plate_key and other.plate_key == report.plate_key) or (
                report.site_key and other.site_key == report.site_key
            )
            there = (other.input.lat, other.input.lon)
            near = (
                here is not None
                and there[0] is not None
                and there[1] is not None
                and distance_m(here, (there[0], there[1])) <= self.policy.radius_m
            )
            if same or near:
                found.append(other)
        return found

    async def unannounced(self) -> list[int]:
        return await self.store.unannounced()

    async def announce(self, report_id: int) -> Submitted | None:
        """The report to post, the first time only."""
        if not await self.store.mark_announced(report_id):
            return None
        report = await self.require(report_id)
        return Submitted(report, tuple(await self.correlated(report)))

    async def for_partner(self, partner: Partner, report_id: int) -> Report | None:
        report = await self.store.report(report_id)
        return report if report is not None and report.partner_id == partner.id else None

    async def own_reports(self, partner: Partner, limit: int) -> list[Report]:
        """The partner's latest reports: what its security officer may follow, nobody else's."""
        return await self.store.partner_reports(partner.id, limit)

    # --- triage ---------------------------------------------------------------------------

    async def require(self, report_id: int) -> Report:
        report = await self.store.report(report_id)
        if report is None:
            raise NotFound(f"there is no EW-{report_id}", f"EW-{report_id}")
        return report

    async def page(self, statuses: Sequence[ReportStatus] | None, page: int) -> ReportPage:
        reports, total = await self.store.reports(statuses, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return ReportPage(reports, total, page, pages)

    async def assess(
        self, actor: str, event_id: str, report_id: int, verdict: ReportStatus, note: str | None
    ) -> Report:
        report = await self.require(report_id)
        if report.status is ReportStatus.CLOSED:
            raise Refused(f"{report.ref} is closed")
        await self._change(
            actor,
            event_id,
            report,
            "ew.assessed",
            {"status": verdict.value, "note": note, "assessed_by": actor},
        )
        return await self.require(report_id)

    async def link(self, actor: str, event_id: str, report_id: int, dossier_ref: str) -> Report:
        report = await self.require(report_id)
        await self.wf.dossiers.require(dossier_ref)
        if report.dossier_ref == dossier_ref:
            raise Refused(f"{report.ref} is linked to {dossier_ref} already")
        await self._change(
            actor, event_id, report, "ew.linked", {"dossier_ref": dossier_ref}, notify=False
        )
        details = report.input
        plate = f", plate {details.vehicle_plate}" if details.vehicle_plate else ""
        await self.wf.store.add_timeline(
            dossier_ref,
            at=self.wf.now,
            actor=actor,
            kind="early-warning",
            text=(
                f"{report.ref} from {report.partner_name} ({report.sector}): "
                f"{details.category} at {details.location}{plate}, "
                f"{human(details.observed_at, self.wf.policy.timezone)}: {details.description}"
            ),
            event_id=event_id,
        )
        return await self.require(report_id)

    async def close(self, actor: str, event_id: str, report_id: int, reason: str) -> Report:
        report = await self.require(report_id)
        if report.status is ReportStatus.CLOSED:
            raise Refused(f"{report.ref} is closed already")
        await self._change(
            actor,
            event_id,
            report,
            "ew.closed",
            {"status": ReportStatus.CLOSED.value, "closed_reason": reason},
        )
        return await self.require(report_id)

    async def _change(
        self,
        actor: str,
        event_id: str,
        report: Report,
        action: str,
        fields: dict[str, Any],
        notify: bool = True,
    ) -> None:
        """A link is internal to the security partners; a status change is the company's
        business too."""
        await self.store.update_report(report.id, {**fields, "updated_at": self.wf.now})
        await self.wf.audit(actor, action, report.ref, event_id, dict(fields))
        if notify:
            await self._notify(await self.require(report.id))

    async def _notify(self, report: Report) -> None:
        """The partner hears of its report's new status by webhook, if it gave one; the
        security partners' notes stay internal."""
        partner = await self.require_partner(report.partner_id)
        if partner.webhook_url and partner.revoked_at is None:
            await self.store.add_webhook(
                partner.id,
                "report.status",
                report.ref,
                report_status(report),
                self.wf.now,
            )

    # --- warnings out ---------------------------------------------------------------------

    async def draft(
        self, actor: str, event_id: str, sector: str, text: str, from_report: int | None
    ) -> SectorWarning:
        text = text.strip()
        if not text:
            raise Refused("the warning needs a text")
        if len(text) > WARNING_TEXT_MAX:
            raise Refused(f"the warning's text is longer than {WARNING_TEXT_MAX} characters")
        if sector != ALL_SECTORS and sector not in Sector.__members__.values():
            raise Refused(f"{sector!r} is not a sector")
        if from_report is not None:
            await self.require(from_report)
        warning = await self.store.add_warning(
            {
                "sector": sector,
                "text": text,
                "from_report": from_report,
                "drafted_by": actor,
                "state": WarningState.PENDING.value,
                "created_at": self.wf.now,
            }
        )
        await self.wf.audit(actor, "warning.drafted", warning.ref, event_id, {"sector": sector})
        return warning

    async def require_warning(self, warning_id: int) -> SectorWarning:
        warning = await self.store.warning(warning_id)
        if warning is None:
            raise NotFound(f"there is no W-{warning_id}", f"W-{warning_id}")
        return warning

    async def react(
        self, actor: str, event_id: str, warning_id: int, choice: Choice
    ) -> WarningVote:
        """Same rules as a measure: approvers (or warning approvers) only, never the drafter,
        a quorum approves, one rejection rejects, decided once under a row lock. Where the
        reaction was, whose it was and the feedback are checked in workflow/approvals.py, for
        both."""
        warning = await self.store.warning(warning_id, lock=True)
        if warning is None:
            return WarningVote(ignored=Ignored.NOT_A_PROMPT)
        why = None
        if warning.state is not WarningState.PENDING:
            why = Ignored.DECIDED
        elif not WARNING_APPROVERS & await self.wf.roles_of(actor):
            why = Ignored.NOT_APPROVER
        elif actor == warning.drafted_by:
            why = Ignored.PROPOSER
        if why is not None:
            await self.wf.audit(actor, "vote.ignored", warning.ref, event_id, {"reason": why.value})
            return WarningVote(ignored=why)
        if not await self.store.add_vote(warning_id, actor, choice, event_id, self.wf.now):
            return WarningVote()
        await self.wf.audit(actor, f"vote.{choice}", warning.ref, event_id, {})
        outcome = tally(await self.store.votes(warning_id), self.wf.policy.quorum)
        if outcome is None:
            return WarningVote()
        state = WarningState.APPROVED if outcome[0] is Choice.APPROVE else WarningState.REJECTED
        return WarningVote(decision=await self._decide(warning, state, outcome[1]))

    async def _decide(
        self, warning: SectorWarning, state: WarningState, by: str
    ) -> WarningDecision | None:
        if not await self.store.close_warning(warning.id, state, by, self.wf.now):
            return None
        decided = await self.require_warning(warning.id)
        await self.wf.audit(by.split(",")[0], f"warning.{state}", warning.ref, "", {"by": by})
        if state is not WarningState.APPROVED:
            return WarningDecision(decided)
        recipients = tuple(
            p
            for p in await self.store.partners(None)
            if p.revoked_at is None and decided.reaches(p.sector)
        )
        for partner in recipients:
            hook = None
            if partner.webhook_url:
                hook = await self.store.add_webhook(
                    partner.id, "warning", decided.ref, warning_payload(decided), self.wf.now
                )
            await self.store.add_delivery(decided.id, partner.id, hook)
        return WarningDecision(decided, recipients)

    async def pending(self) -> list[SectorWarning]:
        return await self.store.warnings([WarningState.PENDING], 1000)

    async def deliveries(self, warning_id: int) -> tuple[SectorWarning, list[Delivery]]:
        warning = await self.require_warning(warning_id)
        return warning, await self.store.deliveries(warning_id)

    async def warnings_for(self, partner: Partner) -> list[SectorWarning]:
        """The partner's warnings by GET; reading them counts as received."""
        found = await self.store.warnings_for(partner.id, 100)
        await self.store.mark_fetched(partner.id, [w.id for w in found], self.wf.now)
        return found


def report_status(report: Report) -> dict[str, Any]:
    """What a partner may know of its report: its status, not the partners' notes."""
    return {
        "id": report.ref,
        "status": report.status.value,
        "received_at": report.received_at.isoformat(),
        "updated_at": (report.updated_at or report.received_at).isoformat(),
    }


def warning_payload(warning: SectorWarning) -> dict[str, Any]:
    return {
        "id": warning.ref,
        "sector": warning.sector,
        "text": warning.text,
        "issued_at": (warning.decided_at or warning.created_at).isoformat(),
    }
