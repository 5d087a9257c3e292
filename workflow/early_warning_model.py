"""Early warning with the private sector: partner companies, their reports, and the sector
warnings sent back to them. Plain values; the rules are in workflow.early_warning."""

from __future__ import annotations

import enum
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime


class Sector(enum.StrEnum):
    ENERGY = "energy"
    TELECOM = "telecom"
    FINANCE = "finance"
    TRANSPORT = "transport"
    CHEMICALS = "chemicals"
    HEALTH = "health"
    OTHER = "other"


ALL_SECTORS = "all"


class Category(enum.StrEnum):
    VEHICLE = "vehicle"
    PERSON = "person"
    DRONE = "drone"
    OBJECT = "object"
    CYBER = "cyber"
    OTHER = "other"


class ReportStatus(enum.StrEnum):
    NEW = "new"
    SUSPICIOUS = "suspicious"
    BENIGN = "benign"
    CLOSED = "closed"


class WarningState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Partner:
    id: int
    name: str
    sector: Sector
    webhook_url: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"partner:{self.id}"


@dataclass(frozen=True)
class NewPartner:
    """What `aegis partner add` prints once: the secrets are never stored in clear again
    (the token) or shown again (the webhook secret)."""

    partner: Partner
    token: str
    webhook_secret: str


@dataclass(frozen=True)
class ReportInput:
    """A company's report, already validated by the intake (bounds, types, time zone)."""

    observed_at: datetime
    location: str
    category: Category
    description: str
    lat: float | None = None
    lon: float | None = None
    vehicle_plate: str | None = None
    contact: str | None = None
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    id: int
    partner_id: int
    partner_name: str
    sector: Sector
    received_at: datetime
    input: ReportInput
    status: ReportStatus = ReportStatus.NEW
    note: str | None = None
    assessed_by: str | None = None
    closed_reason: str | None = None
    dossier_ref: str | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"EW-{self.id}"

    @property
    def plate_key(self) -> str:
        return plate_key(self.input.vehicle_plate)

    @property
    def site_key(self) -> str:
        return site_key(self.input.location)


@dataclass(frozen=True)
class SectorWarning:
    id: int
    sector: str
    """A Sector value, or ALL_SECTORS."""
    text: str
    from_report: int | None
    drafted_by: str
    state: WarningState
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None

    @property
    def ref(self) -> str:
        return f"W-{self.id}"

    def reaches(self, sector: Sector) -> bool:
        return self.sector in (ALL_SECTORS, sector.value)


@dataclass(frozen=True)
class Delivery:
    """One partner's copy of an approved warning: pushed by webhook, fetched by GET, or not
    (yet) received."""

    partner: Partner
    webhook_attempts: int
    webhook_delivered_at: datetime | None
    webhook_failed: bool
    last_error: str | None
    fetched_at: datetime | None

    @property
    def received(self) -> bool:
        return self.webhook_delivered_at is not None or self.fetched_at is not None


def plate_key(plate: str | None) -> str:
    """`1-ABC-123`, `1abc123` and `1 ABC 123` are one plate."""
    return re.sub(r"[^0-9A-Z]", "", (plate or "").upper())


def site_key(location: str) -> str:
    """The same site named with other case, accents or punctuation."""
    bare = unicodedata.normalize("NFKD", location).encode("ascii", "ignore").decode()
    return " ".join(re.findall(r"[a-z0-9]+", bare.casefold()))


EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine); plenty for a radius of hundreds of metres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
