"""`/report`: the plain HTML form a company's security officer uses instead of the API.

No JavaScript: the API token is typed once (checked and audited like the API's), then the
partner's ID is kept in an encrypted, HttpOnly, SameSite=Strict session cookie. Every POST
carries the session's CSRF token. The report is validated by the API's own model and shown
again with the entered values and an error per field; a good one is confirmed with its
EW number. Below the form the partner follows its own latest reports (reference, when
received, status as the API gives it); another partner's never show. Jinja2 autoescapes
everything, so nothing a company typed is rendered as HTML."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from jinja2 import Environment, FileSystemLoader
from multidict import MultiDictProxy
from pydantic import ValidationError

from bot.intake.api import (
    ATTACHMENTS_MAX,
    CONTACT_MAX,
    DESCRIPTION_MAX,
    IDEMPOTENCY_KEY,
    LOCATION_MAX,
    PLATE_MAX,
    REPORT_ID,
    Clock,
    Handler,
    ReportIn,
    error_message,
)
from bot.intake.service import Intake, RateLimited
from bot.web import MAX_BODY
from commands.formatting import when
from workflow.early_warning_model import Category, Partner, Report, ReportInput, ReportStatus

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
SESSION_HOURS = 8
COOKIE = "aegis_report"

FIELDS = (
    "observed_at",
    "address",
    "lat",
    "lon",
    "category",
    "description",
    "vehicle_plate",
    "contact",
    "attachments",
)
LABELS = {
    "token": "API token",
    "observed_at": "When",
    "address": "Where",
    "lat": "Latitude",
    "lon": "Longitude",
    "category": "Kind of incident",
    "description": "What happened",
    "vehicle_plate": "Vehicle plate",
    "contact": "Call back",
    "attachments": "Links",
}
REQUIRED = {
    "observed_at": "Enter when you saw it.",
    "address": "Enter the address or the site's name.",
    "category": "Choose what kind of incident it was.",
    "description": "Describe what happened.",
}
BOUNDS = {
    "lat": "Enter a latitude between -90 and 90.",
    "lon": "Enter a longitude between -180 and 180.",
}
CATEGORIES = (
    (Category.VEHICLE.value, "A vehicle"),
    (Category.PERSON.value, "A person"),
    (Category.DRONE.value, "A drone"),
    (Category.OBJECT.value, "An object"),
    (Category.CYBER.value, "A cyber incident"),
    (Category.OTHER.value, "Something else"),
)
# How many of its own reports a partner sees under the form; the API has each one's status.
OWN_REPORTS = 20
STATUS_MEANING = {
    ReportStatus.NEW: "received, not yet assessed",
    ReportStatus.SUSPICIOUS: "assessed as suspicious: the security partners follow it up",
    ReportStatus.BENIGN: "assessed: no threat found",
    ReportStatus.CLOSED: "closed: no further action",
}
DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def form_errors(error: ValidationError) -> dict[str, str]:
    """The model's errors under the form's field names, in words for a person."""
    found: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        name = loc[-1] if loc[:1] == ["location"] and len(loc) > 1 else loc[0] if loc else ""
        kind = item["type"]
        message = _sentence(error_message(item))
        if name == "location":
            name, message = "lat", "Give both latitude and longitude, or neither."
        elif name in BOUNDS and kind in ("less_than_equal", "greater_than_equal", "finite_number"):
            message = BOUNDS[name]
        elif name == "attachments" and len(loc) > 1:
            message = f"Link {int(loc[1]) + 1}: {message[:1].lower()}{message[1:]}"
        elif name == "attachments":
            message = f"Give at most {ATTACHMENTS_MAX} links."
        elif name in REQUIRED and (
            kind in ("missing", "enum", "none_required")
            or (kind == "string_too_short" and item.get("ctx", {}).get("min_length") == 1)
        ):
            message = REQUIRED[name]
        found.setdefault(name, message)
    return found


class ReportForm:
    def __init__(
        self,
        intake: Intake,
        session_key: str | None,
        tz: ZoneInfo,
        clock: Clock | None = None,
    ) -> None:
        self.intake = intake
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(UTC))
        key = (
            hashlib.sha256(session_key.encode()).digest()
            if session_key
            else secrets.token_bytes(32)
        )
        storage = EncryptedCookieStorage(
            key,
            cookie_name=COOKIE,
            path="/report",
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="Strict",
            secure=intake.public_url.lower().startswith("https://"),
        )
        self._sessions = aiohttp_session.session_middleware(storage)
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/report", self._wrap(self.show)),
            web.post("/report", self._wrap(self.submit)),
            web.post("/report/token", self._wrap(self.sign_in)),
            web.post("/report/sign-out", self._wrap(self.sign_out)),
            web.get("/report/sent/{ref}", self._wrap(self.sent)),
        ]

    # --- plumbing -------------------------------------------------------------------------

    def _wrap(self, handler: Handler) -> Handler:
        """The session around each handler (no app-wide middleware needed), and a page with a
        reference instead of a traceback if anything unexpected fails."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception:
                reference = secrets.token_hex(6)
                log.exception(
                    "report form failed (reference %s) on %s %s",
                    reference,
                    request.method,
                    request.path,
                )
                return self._render(
                    "message.html",
                    500,
                    title="Something went wrong",
                    message=(
                        "Your report could not be handled. Please try again later, and quote "
                        f"reference {reference} if you contact the operators."
                    ),
                )

        async def run(request: web.Request) -> web.StreamResponse:
            return await self._sessions(request, guarded)

        return run

    def _render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        context.setdefault("errors", {})
        context.setdefault("partner", None)
        context.setdefault("labels", LABELS)
        html = self.templates.get_template(template).render(**context)
        return web.Response(
            text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    @staticmethod
    def _redirect(location: str) -> web.Response:
        return web.Response(status=303, headers={**HEADERS, "Location": location})

    @staticmethod
    def _csrf(session: aiohttp_session.Session, renew: bool = False) -> str:
        token = session.get("csrf")
        if renew or not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    @staticmethod
    def _csrf_ok(session: aiohttp_session.Session, given: str) -> bool:
        expected = session.get("csrf")
        return (
            isinstance(expected, str)
            and bool(given)
            and hmac.compare_digest(expected.encode(), given.encode())
        )

    async def _posted(self, request: web.Request) -> dict[str, str] | web.Response:
        """The form's fields, or the page refusing the request (too large, no CSRF token)."""
        try:
            form: MultiDictProxy[Any] = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return self._render(
                "message.html",
                413,
                title="Too much text",
                message=f"A report may have at most {MAX_BODY // 1024} KiB of text in all.",
            )
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        session = await aiohttp_session.get_session(request)
        if not self._csrf_ok(session, values.get("csrf", "")):
            return self._render(
                "message.html",
                403,
                title="Please try again",
                message=(
                    "This form had expired or did not come from this site, so nothing was "
                    "sent. Open the form again and resend it."
                ),
            )
        return values

    async def _partner(self, session: aiohttp_session.Session) -> Partner | None:
        """The signed-in partner, unless it has been revoked since."""
        partner_id = session.get("partner")
        if not isinstance(partner_id, int):
            return None
        partner = await self.intake.partner(partner_id)
        if partner is None or partner.revoked_at is not None:
            session.pop("partner", None)
            return None
        return partner

    def _token_page(
        self, session: aiohttp_session.Session, status: int = 200, error: str | None = None
    ) -> web.Response:
        return self._render(
            "token.html",
            status,
            title="Sign in to report an incident",
            csrf=self._csrf(session),
            errors={"token": error} if error else {},
        )

    def _own_reports(self, reports: list[Report]) -> list[dict[str, str]]:
        """The partner's reports as its officer reads them: local times, the API's status."""
        return [
            {
                "ref": report.ref,
                "received": when(report.received_at, self.tz),
                "updated": when(report.updated_at or report.received_at, self.tz),
                "status": report.status.value,
                "meaning": STATUS_MEANING[report.status],
            }
            for report in reports
        ]

    async def _report_page(
        self,
        session: aiohttp_session.Session,
        partner: Partner,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
    ) -> web.Response:
        values = {name: (values or {}).get(name, "") for name in (*FIELDS, "submission")}
        if not IDEMPOTENCY_KEY.fullmatch(values["submission"]):
            values["submission"] = secrets.token_urlsafe(16)
        errors = errors or {}
        return self._render(
            "report.html",
            400 if errors else 200,
            title="Report a suspicious incident",
            csrf=self._csrf(session),
            partner=partner,
            values=values,
            errors={name: errors[name] for name in FIELDS if name in errors},
            submission=values["submission"],
            zone=self.tz.key,
            example=self.clock().astimezone(self.tz).strftime("%Y-%m-%dT%H:%M"),
            categories=CATEGORIES,
            reports=self._own_reports(await self.intake.own_reports(partner, OWN_REPORTS)),
            shown_at_most=OWN_REPORTS,
            limits={
                "location": LOCATION_MAX,
                "description": DESCRIPTION_MAX,
                "plate": PLATE_MAX,
                "contact": CONTACT_MAX,
                "attachments": ATTACHMENTS_MAX,
            },
        )

    # --- pages ----------------------------------------------------------------------------

    async def show(self, request: web.Request) -> web.Response:
        session = await aiohttp_session.get_session(request)
        partner = await self._partner(session)
        if partner is None:
            return self._token_page(session)
        return await self._report_page(session, partner)

    async def sign_in(self, request: web.Request) -> web.Response:
        values = await self._posted(request)
        if isinstance(values, web.Response):
            return values
        session = await aiohttp_session.get_session(request)
        token = values.get("token", "").strip()
        partner = await self.intake.authenticate(token, request.remote or "unknown")
        if partner is None:
            return self._token_page(
                session, 401, "This token is not valid. Check it, or ask for a new one."
            )
        session["partner"] = partner.id
        self._csrf(session, renew=True)
        return self._redirect("/report")

    async def sign_out(self, request: web.Request) -> web.Response:
        values = await self._posted(request)
        if isinstance(values, web.Response):
            return values
        session = await aiohttp_session.get_session(request)
        session.invalidate()
        return self._redirect("/report")

    async def submit(self, request: web.Request) -> web.Response:
        values = await self._posted(request)
        if isinstance(values, web.Response):
            return values
        session = await aiohttp_session.get_session(request)
        partner = await self._partner(session)
        if partner is None:
            return self._token_page(session, 401, "Your session has ended. Sign in again.")
        report, errors = self.validate(values)
        if report is None:
            return await self._report_page(session, partner, values, errors)
        key = "form:" + values.get("submission", "")
        outcome = await self.intake.submit(
            partner, report, key if IDEMPOTENCY_KEY.fullmatch(key) else None
        )
        if isinstance(outcome, RateLimited):
            minutes = max(1, -(-int(outcome.retry_after.total_seconds()) // 60))
            response = self._render(
                "message.html",
                429,
                title="Too many reports",
                partner=partner,
                csrf=self._csrf(session),
                message=(
                    "Your organisation has sent the most reports allowed in one hour. Nothing "
                    f"was sent this time. Please try again in {minutes} minute"
                    f"{'' if minutes == 1 else 's'}, or call the crisis centre if it is urgent."
                ),
            )
            response.headers["Retry-After"] = str(max(1, int(outcome.retry_after.total_seconds())))
            return response
        return self._redirect(f"/report/sent/{outcome.report.ref}")

    async def sent(self, request: web.Request) -> web.Response:
        session = await aiohttp_session.get_session(request)
        partner = await self._partner(session)
        if partner is None:
            return self._redirect("/report")
        found = REPORT_ID.fullmatch(request.match_info["ref"])
        report = await self.intake.report(partner, int(found[1])) if found else None
        if report is None:
            return self._render(
                "message.html",
                404,
                title="No such report",
                partner=partner,
                csrf=self._csrf(session),
                message="There is no report of your organisation with this reference.",
            )
        return self._render(
            "done.html",
            title="Report received",
            partner=partner,
            csrf=self._csrf(session),
            report=report,
            status_url=self.intake.status_url(report),
        )

    # --- validation -----------------------------------------------------------------------

    def validate(self, values: dict[str, str]) -> tuple[ReportInput | None, dict[str, str]]:
        """The report, or the errors by field; the rules are the API's (ReportIn)."""
        errors: dict[str, str] = {}
        get = {name: values.get(name, "") for name in FIELDS}
        observed: datetime | None = None
        if get["observed_at"].strip():
            observed = self._local_time(get["observed_at"].strip())
            if observed is None:
                errors["observed_at"] = "Enter a date and time like 2026-11-25T07:40."
        coordinates: dict[str, float | None] = {}
        for name in ("lat", "lon"):
            text = get[name].strip().replace(",", ".")
            coordinates[name] = None
            if text:
                try:
                    coordinates[name] = float(text)
                except ValueError:
                    errors[name] = "Enter a number in decimal degrees, like 51.3245."
        data = {
            "observed_at": observed,
            "location": {"address": get["address"], **coordinates},
            "category": get["category"],
            "description": get["description"],
            "vehicle_plate": get["vehicle_plate"] or None,
            "contact": get["contact"] or None,
            "attachments": [
                line.strip() for line in get["attachments"].splitlines() if line.strip()
            ],
        }
        if get["lat"].strip() and not get["lon"].strip() and "lat" not in errors:
            errors["lon"] = "Enter the longitude too, or leave both empty."
        elif get["lon"].strip() and not get["lat"].strip() and "lon" not in errors:
            errors["lat"] = "Enter the latitude too, or leave both empty."
        try:
            body = ReportIn.model_validate(data, strict=False, context={"now": self.clock()})
        except ValidationError as exc:
            for name, message in form_errors(exc).items():
                if (
                    name == "lat"
                    and message.startswith("Give both")
                    and ("lat" in errors or "lon" in errors)
                ):
                    continue
                errors.setdefault(name, message)
            return None, errors
        if errors:
            return None, errors
        return body.to_input(), {}

    def _local_time(self, text: str) -> datetime | None:
        for layout in DATETIME_FORMATS:
            try:
                return datetime.strptime(text, layout).replace(tzinfo=self.tz)
            except ValueError:
                continue
        return None
