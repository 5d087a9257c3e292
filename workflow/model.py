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
    subjects: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    kind: str
    text: str


@dataclass(frozen=True)
class DossierFilter:
    status: DossierStatus | None = DossierStatus.OPEN
    kind: DossierKind | None = None
    level_min: int | None = None
    lead: str | None = None
