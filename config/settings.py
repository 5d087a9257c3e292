"""The typed shape of Aegis's configuration.

Every model forbids unknown keys, so a typo in the file is reported instead of silently
falling back to a default.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

USER_ID_RE = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")
# Room version 12 IDs carry no server part ("!<hash>"); aliases always do.
ROOM_RE = re.compile(
    r"^(![^:\s]+(:[A-Za-z0-9.\-]+(:\d{1,5})?)?|#[^:\s]+:[A-Za-z0-9.\-]+(:\d{1,5})?)$"
)
DURATION_RE = re.compile(r"^(\d{1,5})\s*([smhdw])$")
SERVER_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$")


class Role(enum.StrEnum):
    LIAISON = "liaison"
    ANALYST = "analyst"
    APPROVER = "approver"
    POLICE = "police"
    ADMIN = "admin"
    WARNING_APPROVER = "warning_approver"


def _user_id(value: str) -> str:
    if not USER_ID_RE.match(value):
        raise ValueError(f"{value!r} is not a Matrix user ID like @name:server")
    return value


def _room(value: str) -> str:
    if not ROOM_RE.match(value):
        raise ValueError(f"{value!r} is not a room ID (!id:server) or alias (#name:server)")
    return value


def _server(value: str) -> str:
    if not SERVER_RE.match(value):
        raise ValueError(f"{value!r} is not a server name like example.org")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone like Europe/Brussels") from None
    return value


def _shaped(pattern: str, looks_like: str) -> AfterValidator:
    """A text of a given form, refused in words an operator can act on ("must look like
    https://matrix.example.org"): `Field(pattern=…)` would show them the regular expression."""
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.match(value):
            raise ValueError(f"{value!r} must look like {looks_like}")
        return value

    return AfterValidator(check)


UserId = Annotated[str, AfterValidator(_user_id)]
RoomRef = Annotated[str, AfterValidator(_room)]
ServerName = Annotated[str, AfterValidator(_server)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixSettings(Section):
    homeserver: Annotated[str, _shaped(r"^https?://\S+$", "https://matrix.example.org")]
    user_id: UserId
    password: SecretStr | None = None
    # validate_default: the secret check below must also run when the key is absent.
    access_token: SecretStr | None = Field(default=None, validate_default=True)
    device_id: Annotated[
        str, _shaped(r"^[A-Za-z0-9_\-]{1,64}$", "AEGIS (1 to 64 letters, digits, _ or -)")
    ] = "AEGIS"
    device_name: str = "Aegis"
    store_path: Path = Path("data/store")
    # Encrypts the keys in the E2EE store; without it, a key generated into a file beside
    # the store (config/key_files.py), never nio's built-in default that anyone can read.
    store_key: SecretStr | None = None

    @field_validator("store_key")
    @classmethod
    def _store_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "matrix.store_key must have at least 32 characters (or AEGIS_MATRIX__STORE_KEY)"
            )
        return value

    @field_validator("access_token")
    @classmethod
    def _needs_a_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """A field validator rather than a model validator: pydantic skips model validators
        when any field failed, which would hide this problem until the others were fixed.

        It runs after `password` (declaration order); a password that failed its own
        validation is absent from info.data and already reported, so it is not blamed here.
        """
        if value is None and "password" in info.data and info.data["password"] is None:
            raise ValueError(
                "missing secret: set matrix.password or matrix.access_token "
                "(or AEGIS_MATRIX__PASSWORD / AEGIS_MATRIX__ACCESS_TOKEN)"
            )
        return value


class DatabaseSettings(Section):
    url: Annotated[
        str,
        _shaped(
            r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://",
            "sqlite+aiosqlite:///data/aegis.db or postgresql+asyncpg://user@host/aegis",
        ),
    ] = "sqlite+aiosqlite:///data/aegis.db"
    # PostgreSQL only: migrations run as this role, which then grants the role of `url` what
    # the bot needs (storage/grants.py). Without it, `url`'s role migrates, as before.
    migrate_url: Annotated[
        str | None,
        _shaped(
            r"^postgresql\+asyncpg://",
            "postgresql+asyncpg://owner@host/aegis (PostgreSQL only)",
        ),
    ] = None

    @field_validator("migrate_url")
    @classmethod
    def _same_database(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Migrating another database than the one the bot uses would leave the bot's behind;
        only the role (user and password) may differ."""
        url = info.data.get("url")
        if value is None or url is None:
            return value
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError("needs database.url on PostgreSQL too (SQLite has no roles)")
        if _database_name(value) != _database_name(url):
            raise ValueError(
                f"must name the database of database.url ({_database_name(url)!r}), as another role"
            )
        return value


def _database_name(url: str) -> str | None:
    try:
        return make_url(url).database
    except ArgumentError:
        return None  # the URL's own check reports it


class BotSettings(Section):
    prefix: str = Field(default="!", min_length=1, max_length=8)
    timezone: Annotated[str, AfterValidator(_timezone)] = "Europe/Brussels"
    max_command_bytes: int = Field(default=4096, ge=64, le=65536)


class RoomSettings(Section):
    coordination: RoomRef
    approvals: RoomRef
    operations: RoomRef
    early_warning: RoomRef
    # Where the audit trail's checkpoints are posted; without it, coordination gets them.
    audit: RoomRef | None = None


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = DURATION_RE.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30s, 30m, 4h or 3d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class ApprovalSettings(Section):
    quorum: int = Field(default=1, ge=1, le=20)
    nudge_after: Duration = timedelta(hours=4)
    expire_after: Duration = timedelta(hours=72)
    urgent_role: Role = Role.ADMIN


class Occasion(enum.StrEnum):
    """Posts that ask someone to act; `mentions:` names the roles whose holders are mentioned
    in each, so their clients notify them (the keys of MentionSettings)."""

    APPROVAL = "approval"
    SECTOR_WARNING = "sector_warning"
    ORDER = "order"
    THREAT_LEVEL_4 = "threat_level_4"


class MentionSettings(Section):
    """Occasion -> roles to mention. An empty list mentions nobody on that occasion."""

    approval: list[Role] = [Role.APPROVER]
    sector_warning: list[Role] = [Role.WARNING_APPROVER, Role.APPROVER]
    order: list[Role] = [Role.POLICE]
    threat_level_4: list[Role] = [Role.LIAISON]

    def roles(self) -> dict[Occasion, frozenset[Role]]:
        return {occasion: frozenset(getattr(self, occasion.value)) for occasion in Occasion}


class MeasureSettings(Section):
    end_warning_days: int = Field(default=3, ge=0, le=60)


class ThreatSettings(Section):
    review_days: int = Field(default=30, ge=1, le=366)


MEETING_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
MEETING_ROOMS = ("coordination", "approvals", "operations", "early_warning")
AGENDA_KINDS = ("weekly", "monthly", "daily")


def _rrule(value: str) -> str:
    """Parsed the way the bot reads it: anchored at a local midnight, RFC 5545 syntax."""
    text = value.strip()
    if not text or "DTSTART" in text.upper():
        raise ValueError(f"{value!r} is not an RFC 5545 rule like FREQ=WEEKLY;BYDAY=MO;BYHOUR=10")
    try:
        rule = rrulestr(text, dtstart=datetime(2024, 1, 1))
        rule.after(datetime(2024, 1, 1))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise ValueError(
            f"{value!r} is not an RFC 5545 rule like FREQ=WEEKLY;BYDAY=MO;BYHOUR=10"
        ) from None
    return text


def _meeting_name(value: str) -> str:
    if not MEETING_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a meeting name (1-24 of a-z 0-9 _ -)")
    return value


def _one_of(allowed: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


class MeetingSettings(Section):
    rrule: Annotated[str, AfterValidator(_rrule)]
    room: Annotated[str, _one_of(MEETING_ROOMS)] = "coordination"
    agenda: Annotated[str, _one_of(AGENDA_KINDS)] = "weekly"
    remind_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=1), timedelta(hours=1)], max_length=10
    )


MeetingName = Annotated[str, AfterValidator(_meeting_name)]


class HttpSettings(Section):
    listen: Annotated[
        str, _shaped(r"^[A-Za-z0-9.\-:\[\]]+:\d{1,5}$", "127.0.0.1:8080 (address:port)")
    ] = "127.0.0.1:8080"
    public_url: Annotated[
        str | None,
        _shaped(r"^https?://[^\s?#]+$", "https://aegis.example.org (no ? or # part)"),
    ] = None
    # The calendar feed is served only with a token; partners use their own tokens.
    token: SecretStr | None = None
    session_key: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("http.token must have at least 16 characters (or AEGIS_HTTP__TOKEN)")
        return value

    @field_validator("session_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("http.session_key must have at least 32 characters")
        return value

    @property
    def base_url(self) -> str:
        """What partners are shown; the listen address unless a proxy fronts it."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")


class EarlyWarningSettings(Section):
    correlation_window: Duration = timedelta(days=14)
    radius_m: int = Field(default=500, ge=10, le=50_000)
    pattern_threshold: int = Field(default=3, ge=2, le=50)
    reports_per_hour: int = Field(default=30, ge=1, le=10_000)
    webhook_attempts: int = Field(default=8, ge=1, le=30)
    webhook_backoff: Duration = timedelta(seconds=30)
    webhook_timeout: Duration = timedelta(seconds=10)


class RetentionSettings(Section):
    closed_dossier_years: int = Field(default=5, ge=1, le=100)
    early_warning_days: int = Field(default=365, ge=1, le=36500)
    # How long the outbox keeps a sent message's content (bot/sender.py): minutes.
    outbox_grace_minutes: int = Field(default=60, ge=0, le=10080)


AUDIT_KEY_MIN = 32


class AuditSettings(Section):
    """The audit chain's key (never stored in the database) and how often its head is
    anchored in Matrix. Without `key` or `key_file` the bot generates a key file."""

    key: SecretStr | None = None
    key_file: Path | None = None
    checkpoint_every: int = Field(default=100, ge=1, le=1_000_000)
    checkpoint_minutes: int = Field(default=60, ge=1, le=10_080)

    @field_validator("key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < AUDIT_KEY_MIN:
            raise ValueError(
                f"audit.key must have at least {AUDIT_KEY_MIN} characters (or AEGIS_AUDIT__KEY)"
            )
        return value

    @field_validator("key_file")
    @classmethod
    def _one_source(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Two sources could disagree; which one signed the chain must never be a guess."""
        if value is not None and info.data.get("key") is not None:
            raise ValueError("set audit.key or audit.key_file, not both")
        return value


READ_DATA = ("dossier", "execution", "early_warning")
_CONTENT_ROLES = [Role.LIAISON, Role.ANALYST, Role.APPROVER, Role.ADMIN]


def _default_read() -> dict[str, list[Role]]:
    """The same defaults as workflow/access.py's DEFAULT_READ (a test keeps them equal)."""
    return {
        "dossier": list(_CONTENT_ROLES),
        "execution": [*_CONTENT_ROLES, Role.POLICE],
        "early_warning": [*_CONTENT_ROLES, Role.WARNING_APPROVER],
    }


def _read_policy(value: dict[str, list[Role]]) -> dict[str, list[Role]]:
    unknown = sorted(set(value) - set(READ_DATA))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not one of: {', '.join(READ_DATA)}")
    # A key left out keeps its default: narrowing one kind of data must not open another.
    return {**_default_read(), **value}


class AccessSettings(Section):
    # Which roles may read which data; a room member without one of them freezes posts of
    # that data in the room.
    read: Annotated[dict[str, list[Role]], AfterValidator(_read_policy)] = Field(
        default_factory=_default_read
    )
    # Always cleared: a moderation bot, a bridge.
    service_accounts: list[UserId] = []
    # An uncleared member of a dossier room is removed (configured rooms only warn).
    remove_uncleared: bool = True


class LoggingSettings(Section):
    level: Annotated[
        str, _shaped(r"^(DEBUG|INFO|WARNING|ERROR)$", "one of DEBUG, INFO, WARNING, ERROR")
    ] = "INFO"
    json_format: bool = Field(default=False, alias="json")


class Settings(BaseSettings):
    """The whole file; environment variables AEGIS_<SECTION>__<KEY> override it, for secrets."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="AEGIS_", env_nested_delimiter="__"
    )

    matrix: MatrixSettings
    database: DatabaseSettings = DatabaseSettings()
    bot: BotSettings = BotSettings()
    rooms: RoomSettings
    roles: dict[UserId, list[Role]] = {}
    threats: ThreatSettings = ThreatSettings()
    approval: ApprovalSettings = ApprovalSettings()
    measures: MeasureSettings = MeasureSettings()
    mentions: MentionSettings = MentionSettings()
    meetings: dict[MeetingName, MeetingSettings] = {}
    http: HttpSettings = HttpSettings()
    early_warning: EarlyWarningSettings = EarlyWarningSettings()
    retention: RetentionSettings = RetentionSettings()
    audit: AuditSettings = AuditSettings()
    access: AccessSettings = AccessSettings()
    allowed_servers: list[ServerName] = Field(
        default=[], description="servers whose users may command the bot; empty: its own only"
    )
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The file comes in as init arguments; the environment wins over it."""
        return (env_settings, init_settings)
