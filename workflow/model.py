"""The domain's vocabulary: kinds, categories, threat levels and the records the workflow
hands to commands. Pure data, shared by storage (which fills it) and commands (which show it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class DossierKind(enum.StrEnum):
    PERSON = "person"
    INSTITUTION = "institution"
    EVENT = "event"


CATEGORIES: dict[DossierKind, tuple[str, ...]] = {
    DossierKind.PERSON: (
        "head-of-state",
        "head-of-government",
        "minister",
        "diplomat",
        "threatened-person",
        "other",
    ),
    DossierKind.INSTITUTION: ("embassy", "international-organisation", "other"),
    DossierKind.EVENT: ("summit", "visit", "demonstration", "other"),
}


class DossierStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Basis(enum.StrEnum):
    """Why protection is considered: the person's status, a threat analysis, or both."""

    STATUS = "status"
    THREAT = "threat"
    BOTH = "both"


class Source(enum.StrEnum):
    OCAD = "OCAD"
    POLICE = "police"
    VSSE = "VSSE"
    OTHER = "other"


class ThreatLevel(enum.IntEnum):
    """OCAD's four levels, set by law; named in the three languages the partners use."""

    LOW = 1
    MEDIUM = 2
    SERIOUS = 3
    VERY_SERIOUS = 4

    @property
    def names(self) -> tuple[str, str, str]:
        return _LEVEL_NAMES[self]

    @property
    def label(self) -> str:
        """`3 SERIOUS / ERNSTIG / GRAVE`."""
        return f"{int(self)} " + " / ".join(self.names)


_LEVEL_NAMES = {
    ThreatLevel.LOW: ("LOW", "LAAG", "FAIBLE"),
    ThreatLevel.MEDIUM: ("MEDIUM", "GEMIDDELD", "MOYEN"),
    ThreatLevel.SERIOUS: ("SERIOUS", "ERNSTIG", "GRAVE"),
    ThreatLevel.VERY_SERIOUS: ("VERY SERIOUS", "ZEER ERNSTIG", "TRÈS GRAVE"),
}


@dataclass(frozen=True)
class Person:
    """A person a dossier covers, `D-2026-0007/2` inside it. A removed person stays on
    record (ended measures and old assessments name them) but is no longer covered."""

    id: int
    dossier_ref: str
    number: int
    name: str
    removed_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.dossier_ref}/{self.number}"

    @property
    def label(self) -> str:
        """`D-2026-0007/2 Anna Peeters`, marked when removed."""
        return f"{self.ref} {self.name}" + (" (removed)" if self.removed_at else "")


@dataclass(frozen=True)
class Dossier:
    ref: str
    kind: DossierKind
    category: str
    title: str
    status: DossierStatus
    basis: Basis | None
    external_ref: str | None
    lead: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    room_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    level: ThreatLevel | None
    level_at: datetime | None
    persons: tuple[Person, ...] = ()  # by number, removed ones included
    purged_at: datetime | None = None  # personal data removed by retention: a tombstone
    room_requested_at: datetime | None = None  # `!dossier room` asked, the room not yet made

    @property
    def covered(self) -> tuple[Person, ...]:
        """The persons the dossier covers now."""
        return tuple(p for p in self.persons if p.removed_at is None)

    def person(self, person_id: int | None) -> Person | None:
        return next((p for p in self.persons if p.id == person_id), None)


@dataclass(frozen=True)
class Assessment:
    dossier_ref: str
    level: ThreatLevel
    source: Source
    summary: str
    external_ref: str | None
    review_at: datetime
    assessed_by: str
    created_at: datetime
    person_id: int | None = None  # None: the dossier as a whole


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    kind: str
    text: str


FIELD_NAMES = {
    "starts_at": "start",
    "ends_at": "end",
    "review_at": "review",
    "external_ref": "reference",
}
"""Record fields as people name them (and as the commands spell them), for text people read:
a timeline entry says "end", never `ends_at`. Fields not listed read as they are."""


def field_name(key: str) -> str:
    return FIELD_NAMES.get(key, key)


@dataclass(frozen=True)
class DossierFilter:
    status: DossierStatus | None = DossierStatus.OPEN
    kind: DossierKind | None = None
    level_min: int | None = None
    lead: str | None = None
    involving: str | None = None
    """Only dossiers this user opened or leads."""


class MeasureType(enum.StrEnum):
    CONTACT_247 = "contact-247"
    PRIORITY_CALLS = "priority-calls"
    TECHNO_PREVENTION = "techno-prevention"
    PATROL = "patrol"
    CHECKS = "checks"
    FIXED_POST = "fixed-post"
    CLOSE_PROTECTION = "close-protection"

    @property
    def description(self) -> str:
        return _MEASURE_NAMES[self]


_MEASURE_NAMES = {
    MeasureType.CONTACT_247: "police contact person reachable 24/7",
    MeasureType.PRIORITY_CALLS: "priority handling of calls by the emergency centres",
    MeasureType.TECHNO_PREVENTION: "techno-preventive survey of home or premises",
    MeasureType.PATROL: "patrols at varying times",
    MeasureType.CHECKS: "checks of suspicious persons, vehicles and objects",
    MeasureType.FIXED_POST: "fixed post with permanent police presence",
    MeasureType.CLOSE_PROTECTION: "close protection (federal police, protection directorate)",
}


class MeasureState(enum.StrEnum):
    PROPOSED = "proposed"
    PROVISIONAL = "provisional"  # urgent: in force while the decision is pending
    ACTIVE = "active"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    ENDED = "ended"
    EXPIRED = "expired"

    @property
    def in_force(self) -> bool:
        return self in (MeasureState.ACTIVE, MeasureState.PROVISIONAL)


class ProposalAction(enum.StrEnum):
    CREATE = "create"
    EXTEND = "extend"
    LIMIT = "limit"
    MAINTAIN = "maintain"
    END = "end"


class ProposalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class Choice(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Measure:
    id: int
    dossier_ref: str
    type: MeasureType
    details: str
    executor: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    review_at: datetime | None
    state: MeasureState
    created_by: str
    created_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    person_id: int | None = None  # None: the dossier as a whole

    @property
    def ref(self) -> str:
        return f"M-{self.id}"

    def in_force_at(self, at: datetime) -> bool:
        """Protection actually given at `at`: approved (or provisional), started, not ended.
        An approved measure whose start is still to come is not in force yet."""
        return (
            self.state.in_force
            and (self.starts_at is None or self.starts_at <= at)
            and (self.ends_at is None or self.ends_at > at)
        )

    def scheduled_at(self, at: datetime) -> bool:
        """Approved (or provisional) at `at`, with its start still to come."""
        return self.state.in_force and self.starts_at is not None and self.starts_at > at


@dataclass(frozen=True)
class Proposal:
    id: int
    measure_id: int
    action: ProposalAction
    changes: dict[str, str]
    reason: str
    proposer: str
    origin_room: str
    urgent: bool
    state: ProposalState
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    rationale: str | None
    rationale_by: str | None

    @property
    def ref(self) -> str:
        return f"P-{self.id}"


@dataclass(frozen=True)
class Vote:
    voter: str
    choice: Choice
    reaction_event_id: str
    cast_at: datetime
