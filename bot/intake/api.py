"""The partners' JSON API under /api/v1: reports in, their status and the sector warnings out.

Every answer is JSON, bad input included: 400 names each bad field, 401 says the same
whether the token is unknown, revoked or missing (and is audited), 413 for bodies over the
server's limit, 415 for anything but JSON, 429 with Retry-After. Nothing a partner sends can
make a handler answer 5xx; an unexpected failure is logged under a reference and answered
500 with that reference only. The bodies are JSON with `<`, `>` and `&` escaped, so no
browser could ever take a partner's text for HTML."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from bot.intake.service import Intake, RateLimited
from bot.web import MAX_BODY
from workflow.early_warning import report_status, warning_payload
from workflow.early_warning_model import (
    Category,
    Partner,
    Report,
    ReportInput,
    ReportStatus,
    plate_key,
    site_key,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOCATION_MAX = 300
DESCRIPTION_MAX = 4000
PLATE_MAX = 32
CONTACT_MAX = 300
ATTACHMENTS_MAX = 10
LINK_MAX = 500
FUTURE_SLACK = timedelta(minutes=10)
OLDEST = timedelta(days=365)
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,100}")
REPORT_ID = re.compile(r"(?:EW-)?([0-9]{1,9})", re.ASCII | re.IGNORECASE)

# Text a partner may send: no control characters but tab and line breaks (PostgreSQL cannot
# store NUL, and the rooms should not show the rest).
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
LINK_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"
LINK_MESSAGE = "must be an http or https link"
PATTERN_MESSAGES = {TEXT_PATTERN: "must not contain control characters", LINK_PATTERN: LINK_MESSAGE}


def _link(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(LINK_MESSAGE) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(LINK_MESSAGE)
    return value


LocationText = Annotated[
    str, StringConstraints(min_length=1, max_length=LOCATION_MAX, pattern=TEXT_PATTERN)
]
DescriptionText = Annotated[
    str, StringConstraints(min_length=1, max_length=DESCRIPTION_MAX, pattern=TEXT_PATTERN)
]
PlateText = Annotated[str, StringConstraints(max_length=PLATE_MAX, pattern=TEXT_PATTERN)]
ContactText = Annotated[str, StringConstraints(max_length=CONTACT_MAX, pattern=TEXT_PATTERN)]
Link = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LINK_MAX, pattern=LINK_PATTERN),
    AfterValidator(_link),
]


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, str_strip_whitespace=True, allow_inf_nan=False
    )


class LocationIn(Strict):
    """Where it happened: an address or the site's name, and optionally its coordinates."""

    address: LocationText = Field(
        description="Street address or site name, e.g. 'Gate 3, Doel power station'."
    )
    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS 84 latitude.")
    lon: float | None = Field(default=None, ge=-180, le=180, description="WGS 84 longitude.")

    @field_validator("address")
    @classmethod
    def _site_key_fits(cls, value: str) -> str:
        # The normalised site name is stored too; some characters expand when normalised.
        if len(site_key(value)) > LOCATION_MAX:
            raise ValueError(f"must have at most {LOCATION_MAX} characters once normalised")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> LocationIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self


class ReportIn(Strict):
    """A suspicious incident, as a partner reports it."""

    observed_at: AwareDatetime = Field(
        description=(
            "When it was seen: ISO 8601 with a time zone, at most 10 minutes in the future "
            "and at most one year ago."
        ),
        examples=["2026-11-25T07:40:00+01:00"],
    )
    location: LocationIn
    category: Category
    description: DescriptionText
    vehicle_plate: PlateText | None = Field(
        default=None, description="Any spelling: '1-ABC-123', '1abc123' and '1 ABC 123' match."
    )
    contact: ContactText | None = Field(
        default=None, description="Who to call back about this report."
    )
    attachments: list[Link] = Field(
        default_factory=list,
        max_length=ATTACHMENTS_MAX,
        description="Links to photos or documents (http or https).",
    )

    @field_validator("observed_at")
    @classmethod
    def _recent(cls, value: datetime, info: ValidationInfo) -> datetime:
        context = info.context if isinstance(info.context, dict) else {}
        now = context.get("now") or datetime.now(UTC)
        if value > now + FUTURE_SLACK:
            raise ValueError("must not be more than 10 minutes in the future")
        if value < now - OLDEST:
            raise ValueError("must not be more than one year ago")
        return value

    @field_validator("vehicle_plate")
    @classmethod
    def _plate_key_fits(cls, value: str | None) -> str | None:
        if value is not None and len(plate_key(value)) > PLATE_MAX:
            raise ValueError(f"must have at most {PLATE_MAX} characters once normalised")
        return value

    def to_input(self) -> ReportInput:
        return ReportInput(
            # In UTC: SQLite keeps a timestamp's wall time but not its offset.
            observed_at=self.observed_at.astimezone(UTC),
            location=self.location.address,
            category=self.category,
            description=self.description,
            lat=self.location.lat,
            lon=self.location.lon,
            vehicle_plate=self.vehicle_plate or None,
            contact=self.contact or None,
            attachments=tuple(self.attachments),
        )


def parse_report(raw: bytes | str, now: datetime) -> ReportIn:
    """Raises ValidationError; see `field_errors`."""
    return ReportIn.model_validate_json(raw, context={"now": now})


def field_errors(error: ValidationError) -> dict[str, str]:
    """Dotted field name (`location.lat`, `attachments.2`; `body` for the whole) to message."""
    found: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        found.setdefault(name, error_message(item))
    return found


def error_message(item: ErrorDetails) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "string_pattern_mismatch":
        message = PATTERN_MESSAGES.get(str((item.get("ctx") or {}).get("pattern")), message)
    return message


# --- answers (their schemas are in the OpenAPI document) ----------------------------------


class Created(BaseModel):
    id: str = Field(pattern=r"^EW-[0-9]+$", examples=["EW-17"])
    status: ReportStatus
    status_url: str


class LocationOut(BaseModel):
    address: str
    lat: float | None
    lon: float | None


class ReportOut(BaseModel):
    """A partner's own report and how far the security partners got with it."""

    id: str = Field(pattern=r"^EW-[0-9]+$")
    status: ReportStatus
    received_at: datetime
    updated_at: datetime
    observed_at: datetime
    category: Category
    location: LocationOut
    description: str
    vehicle_plate: str | None
    contact: str | None
    attachments: list[str]


class WarningOut(BaseModel):
    id: str = Field(pattern=r"^W-[0-9]+$")
    sector: str = Field(description="A sector, or 'all'.")
    text: str
    issued_at: datetime


class Warnings(BaseModel):
    warnings: list[WarningOut]


class Problem(BaseModel):
    error: str


class Invalid(BaseModel):
    error: Literal["invalid report"]
    fields: dict[str, str] = Field(
        description="Dotted field name ('location.lat', 'attachments.2', 'body') to message."
    )


class TooMany(BaseModel):
    error: Literal["rate limit exceeded"]
    retry_after: int = Field(ge=1, description="Seconds; the Retry-After header says the same.")


class Internal(BaseModel):
    error: Literal["internal error"]
    reference: str = Field(description="Quote it to the operators; it is in their logs.")


def report_body(report: Report) -> dict[str, Any]:
    given = report.input
    return {
        **report_status(report),
        "observed_at": given.observed_at.isoformat(),
        "category": given.category.value,
        "location": {"address": given.location, "lat": given.lat, "lon": given.lon},
        "description": given.description,
        "vehicle_plate": given.vehicle_plate,
        "contact": given.contact,
        "attachments": list(given.attachments),
    }


def _dumps(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def answer(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(data, status=status, dumps=_dumps, headers=headers)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


UNAUTHORIZED = {"error": "invalid or missing token"}
NOT_FOUND = {"error": "report not found"}


def guarded(handler: Handler) -> Handler:
    """No traceback ever reaches a partner; aiohttp's own refusals come out as JSON too."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 500:
                raise
            if exc.status < 400:
                raise
            return answer(exc.status, {"error": (exc.reason or "refused").lower()})
        except Exception:
            reference = secrets.token_hex(6)
            log.exception(
                "intake API failed (reference %s) on %s %s", reference, request.method, request.path
            )
            return answer(500, {"error": "internal error", "reference": reference})

    return run


class IntakeApi:
    def __init__(self, intake: Intake, clock: Clock | None = None) -> None:
        self.intake = intake
        self.clock = clock or (lambda: datetime.now(UTC))
        self._openapi: dict[str, Any] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/reports", guarded(self.submit)),
            web.get("/api/v1/reports/{id}", guarded(self.show)),
            web.get("/api/v1/warnings", guarded(self.warnings)),
            web.get("/api/v1/openapi.json", guarded(self.openapi)),
        ]

    async def _partner(self, request: web.Request) -> Partner | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        return await self.intake.authenticate(token, request.remote or "unknown")

    @staticmethod
    def _unauthorized() -> web.Response:
        return answer(401, UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="aegis"'})

    async def submit(self, request: web.Request) -> web.Response:
        partner = await self._partner(request)
        if partner is None:
            return self._unauthorized()
        kind = request.content_type
        if kind != "application/json" and not kind.endswith("+json"):
            return answer(415, {"error": "send the report as application/json"})
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            fields = {"Idempotency-Key": "must be 1 to 100 printable ASCII characters"}
            return answer(400, {"error": "invalid report", "fields": fields})
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return answer(413, {"error": f"the body must be at most {MAX_BODY} bytes"})
        try:
            body = parse_report(raw, self.clock())
        except ValidationError as exc:
            return answer(400, {"error": "invalid report", "fields": field_errors(exc)})
        outcome = await self.intake.submit(partner, body.to_input(), key)
        if isinstance(outcome, RateLimited):
            seconds = max(1, math.ceil(outcome.retry_after.total_seconds()))
            return answer(
                429,
                {"error": "rate limit exceeded", "retry_after": seconds},
                {"Retry-After": str(seconds)},
            )
        report = outcome.report
        url = self.intake.status_url(report)
        return answer(
            200 if outcome.duplicate else 201,
            {"id": report.ref, "status": report.status.value, "status_url": url},
            {"Location": url},
        )

    async def show(self, request: web.Request) -> web.Response:
        partner = await self._partner(request)
        if partner is None:
            return self._unauthorized()
        found = REPORT_ID.fullmatch(request.match_info["id"])
        report = await self.intake.report(partner, int(found[1])) if found else None
        if report is None:
            return answer(404, NOT_FOUND)
        return answer(200, report_body(report))

    async def warnings(self, request: web.Request) -> web.Response:
        partner = await self._partner(request)
        if partner is None:
            return self._unauthorized()
        found = await self.intake.warnings(partner)
        return answer(200, {"warnings": [warning_payload(w) for w in found]})

    async def openapi(self, request: web.Request) -> web.Response:
        if self._openapi is None:
            from bot.intake.openapi import document

            self._openapi = document(self.intake.public_url)
        return answer(200, self._openapi)
