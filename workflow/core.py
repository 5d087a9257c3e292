"""Who may act, the audit trail every effect and refusal goes to, and the services the
commands, reactions and scheduler share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from config import Occasion, Role
from config.settings import MentionSettings
from workflow.access import AccessPolicy, Data
from workflow.early_warning import EarlyWarningPolicy
from workflow.meetings import MeetingSpec
from workflow.refs import READ_TO_SEE, closest, kind_of

if TYPE_CHECKING:
    from storage.store import Store


@dataclass(frozen=True)
class Policy:
    """Tunable rules from the config."""

    review_days: int = 30
    page_size: int = 20
    quorum: int = 1
    nudge_after: timedelta = timedelta(hours=4)
    expire_after: timedelta = timedelta(hours=72)
    urgent_role: Role = Role.ADMIN
    end_warning: timedelta = timedelta(days=3)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Brussels"))
    meetings: tuple[MeetingSpec, ...] = ()
    early_warning: EarlyWarningPolicy = field(default_factory=EarlyWarningPolicy)
    # Whose holders a post asking someone to act mentions (config `mentions:`).
    mentions: Mapping[Occasion, frozenset[Role]] = field(
        default_factory=lambda: MentionSettings().roles()
    )


@dataclass(frozen=True)
class RuntimeInfo:
    version: str
    started_at: datetime


class Workflow:
    """Bound to one transaction: everything it records commits with the event that caused it."""

    def __init__(
        self,
        store: Store,
        now: datetime,
        access: AccessPolicy,
        info: RuntimeInfo,
        policy: Policy | None = None,
    ) -> None:
        from workflow.agenda import AgendaRules
        from workflow.approvals import ApprovalRules
        from workflow.dossiers import DossierRules
        from workflow.early_warning import EarlyWarningRules
        from workflow.early_warning_retention import EarlyWarningRetention
        from workflow.measures import MeasureRules
        from workflow.meetings import MeetingRules
        from workflow.membership import MembershipRules
        from workflow.persons import PersonRules
        from workflow.privacy import PrivacyRules
        from workflow.reminders import ReminderRules
        from workflow.roles import RoleRules
        from workflow.schedule import ScheduleRules
        from workflow.threats import ThreatRules

        self.store = store
        self.now = now
        self.access = access
        self.info = info
        self.policy = policy or Policy()
        # Whether the room a command's answer goes to may read a kind of data. The runtime
        # sets it from the audience check; an answer the room may not read is withheld, so
        # what the command looked up was displayed to nobody and is recorded as no read.
        self.room_may_read: Callable[[Data], bool] = lambda data: True
        self.dossiers = DossierRules(self)
        self.persons = PersonRules(self)
        self.threats = ThreatRules(self)
        self.roles = RoleRules(self)
        self.measures = MeasureRules(self)
        self.approvals = ApprovalRules(self)
        self.schedule = ScheduleRules(self)
        self.agenda = AgendaRules(self)
        self.meetings = MeetingRules(self)
        self.privacy = PrivacyRules(self)
        self.early_warning = EarlyWarningRules(self)
        self.ew_retention = EarlyWarningRetention(self)
        self.membership = MembershipRules(self)
        self.reminders = ReminderRules(self)

    async def roles_of(self, user_id: str) -> frozenset[Role]:
        """The config file's seed, plus the grants in force. A revocation only takes back a
        grant: the seed always holds, so the file restores whatever chat did to its roles.
        A user on a server not allowed has no role at all."""
        if not self.access.server_allowed(user_id):
            return frozenset()
        granted = (await self.store.role_changes(user_id)).items()
        return self.access.roles.get(user_id, frozenset()) | {
            Role(role) for role, on in granted if on
        }

    async def audit(
        self,
        actor: str,
        action: str,
        target: str,
        event_id: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Appends an entry; returns its seq, for the indexes that point at it."""
        roles = ",".join(sorted(await self.roles_of(actor)))
        return await self.store.append_audit(
            actor=actor,
            role=roles,
            action=action,
            target=target,
            event_id=event_id,
            detail=detail or {},
            now=self.now,
        )

    async def closest_ids(self, ref: str, roles: frozenset[Role]) -> list[str]:
        """For an ID that names nothing: the closest existing IDs of its kind, if the roles
        may read what such IDs name (workflow/refs.py); none otherwise."""
        kind = kind_of(ref)
        data = READ_TO_SEE.get(kind)
        if data is None or not self.access.may_read(roles, data):
            return []
        return closest(ref, await self.store.existing_ids(kind))

    async def refuse(self, actor: str, action: str, target: str, event_id: str, why: str) -> None:
        await self.audit(actor, "refused:" + action, target, event_id, {"reason": why})
